// The status page: keeps each line's card current from the /events stream (server-sent events).
"use strict";

(function () {
  // The same labels and fields as appliance/web/status_page.py renders on first load.
  const STATE_LABELS = {
    starting: "Starting", idle: "Ready", ringing: "Ringing", "in-call": "In a call",
    error: "Error", down: "Down",
  };
  const FIELDS = [
    ["signal_dbm", "Signal"], ["operator", "Operator"], ["registration", "Network"],
    ["sim", "SIM"], ["caller_id", "Caller"], ["model", "Modem"], ["error", "Problem"],
  ];
  const list = document.getElementById("lines");
  const empty = document.getElementById("no-lines");
  const live = document.getElementById("live");
  if (!list || !live) return;

  function stateLabel(state) {
    return STATE_LABELS[state] || (state ? state[0].toUpperCase() + state.slice(1) : "Unknown");
  }

  function signalBars(detail) {
    const dbm = detail.signal_dbm;
    if (typeof dbm !== "number") return 0;
    return Math.max(0, Math.min(4, Math.floor((dbm + 113) / 10)));
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function findCard(name) {
    return Array.from(list.children).find((card) => card.dataset.line === name) || null;
  }

  function newCard(name) {
    const card = el("article", "card line");
    card.dataset.line = name;
    const head = el("div", "line-head");
    const bars = el("div", "bars");
    bars.setAttribute("aria-hidden", "true");
    for (let i = 0; i < 4; i += 1) bars.append(el("i"));
    head.append(el("h2", "", name), bars, el("span", "state"));
    card.append(head, el("dl", "details"));
    const after = Array.from(list.children).find((other) => other.dataset.line > name);
    list.insertBefore(card, after || null);
    return card;
  }

  function showLine(name, line) {
    const card = findCard(name) || newCard(name);
    const state = String(line.state || "unknown");
    const detail = line.detail || {};
    const changed = card.dataset.state !== undefined && card.dataset.state !== state;
    card.dataset.state = state;
    const badge = card.querySelector(".state");
    badge.dataset.state = state;
    badge.textContent = stateLabel(state);
    card.querySelector(".bars").dataset.bars = String(signalBars(detail));
    const rows = [];
    for (const [key, label] of FIELDS) {
      const value = detail[key];
      if (value === undefined || value === null || value === "") continue;
      const row = el("div");
      row.dataset.field = key;
      row.append(el("dt", "", label),
                 el("dd", "", key === "signal_dbm" ? `${value} dBm` : String(value)));
      rows.push(row);
    }
    card.querySelector(".details").replaceChildren(...rows);
    if (changed) {
      card.classList.remove("changed");
      void card.offsetWidth; // restart the highlight animation
      card.classList.add("changed");
    }
    if (empty) empty.hidden = true;
  }

  function showSnapshot(lines) {
    for (const card of Array.from(list.children)) {
      if (!(card.dataset.line in lines)) card.remove();
    }
    for (const name of Object.keys(lines).sort()) showLine(name, lines[name]);
    if (empty) empty.hidden = Object.keys(lines).length > 0;
  }

  function setLive(state, text) {
    live.dataset.live = state;
    live.textContent = text;
  }

  // After the stream is refused for good (401 once the session ends, 503 when full):
  // go to the login page if the session is gone, else try again shortly.
  function recover() {
    fetch("/api/status", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((reply) => {
        if (reply.status === 401) window.location.assign("/login");
        else window.setTimeout(connect, 3000);
      })
      .catch(() => window.setTimeout(recover, 5000));
  }

  function connect() {
    setLive("connecting", "Connecting…");
    const source = new EventSource("/events");
    source.addEventListener("open", () => setLive("on", "Live"));
    source.addEventListener("snapshot", (event) => showSnapshot(JSON.parse(event.data).lines));
    source.addEventListener("line.status", (event) => {
      const data = JSON.parse(event.data);
      showLine(data.line, { state: data.state, detail: data.detail });
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        setLive("off", "Offline");
        source.close();
        recover();
      } else {
        setLive("connecting", "Reconnecting…");
      }
    });
  }

  connect();
})();
