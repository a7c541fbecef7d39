// The live view: lines and running conferences, kept current from the /events stream;
// its buttons POST to /api/live/… with the session's CSRF header and show what happened.
"use strict";

(function () {
  const STATE_LABELS = {
    starting: "Starting", idle: "Ready", ringing: "Ringing", "in-call": "In a call",
    error: "Error", down: "Down",
  };
  const ROOM_STATES = { waiting: "Waiting", started: "Live" };
  // Every conference event carries the room's roster: one handler redraws the room.
  const ROOM_EVENTS = ["start", "join", "leave", "mute", "hold", "speaker", "modify", "floor",
                       "recording", "announcement", "digits"];
  const METER_FLOOR = -60; // dBFS shown as an empty meter
  const live = document.getElementById("live");
  const strip = document.getElementById("line-strip");
  const list = document.getElementById("conferences");
  const empty = document.getElementById("no-conferences");
  const banner = document.getElementById("live-error");
  const csrf = document.querySelector('meta[name="csrf-token"]');
  if (!live || !list) return;

  const callers = {};      // CallSid → caller's number
  let clockOffset = 0;     // appliance clock − this device's clock, in seconds
  let refreshing = false;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function now() { return Date.now() / 1000 + clockOffset; }

  function since(joinedAt) {
    const seconds = Math.max(0, Math.floor(now() - joinedAt));
    if (seconds < 60) return `${seconds} s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
    return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }

  function tickClocks() {
    for (const node of document.querySelectorAll("[data-joined]")) {
      node.textContent = since(Number(node.dataset.joined));
    }
  }

  function showError(text) {
    banner.textContent = text;
    banner.hidden = !text;
  }

  // --- lines ---------------------------------------------------------------------------

  function signalBars(detail) {
    const dbm = detail.signal_dbm;
    if (typeof dbm !== "number") return 0;
    return Math.max(0, Math.min(4, Math.floor((dbm + 113) / 10)));
  }

  function showLine(name, line) {
    let item = Array.from(strip.children).find((node) => node.dataset.line === name);
    if (!item) {
      item = el("li", "line-chip");
      item.dataset.line = name;
      const bars = el("span", "bars");
      bars.setAttribute("aria-hidden", "true");
      for (let i = 0; i < 4; i += 1) bars.append(el("i"));
      item.append(el("strong", "", name), bars, el("span", "state"), el("span", "operator"));
      const after = Array.from(strip.children).find((other) => other.dataset.line > name);
      strip.insertBefore(item, after || null);
    }
    const state = String(line.state || "unknown");
    const detail = line.detail || {};
    item.dataset.state = state;
    const badge = item.querySelector(".state");
    badge.dataset.state = state;
    badge.textContent = STATE_LABELS[state] || state;
    item.querySelector(".bars").dataset.bars = String(signalBars(detail));
    item.querySelector(".operator").textContent =
      [detail.operator, typeof detail.signal_dbm === "number" ? `${detail.signal_dbm} dBm` : ""]
        .filter(Boolean).join(" · ");
  }

  // --- conferences -----------------------------------------------------------------------

  function findRoom(sid) {
    return Array.from(list.children).find((card) => card.dataset.sid === sid) || null;
  }

  function button(text, action, className) {
    const node = el("button", className || "", text);
    node.type = "button";
    node.dataset.action = action;
    return node;
  }

  function newRoom(room) {
    const card = el("article", "card room");
    card.dataset.sid = room.sid;
    card.dataset.name = room.name;
    const head = el("div", "room-head");
    head.append(el("h2", "", room.name), el("span", "room-state"), el("span", "room-count"),
                button("End conference", "end", "danger end"));
    card.append(head, el("p", "error room-error"), el("ul", "participants"));
    card.querySelector(".room-error").hidden = true;
    card.querySelector(".room-error").setAttribute("role", "alert");
    list.append(card);
    return card;
  }

  function newPerson(p) {
    const item = el("li", "participant");
    item.dataset.callSid = p.call_sid;
    const talk = el("span", "talk");
    talk.setAttribute("aria-hidden", "true");
    const who = el("div", "who");
    who.append(el("strong", "caller"), el("span", "label"));
    const facts = el("div", "facts");
    const joined = el("span", "joined");
    joined.append("joined ", el("span", "since"), " ago");
    facts.append(joined, el("span", "badge muted-badge", "Muted"),
                 el("span", "badge held-badge", "On hold"),
                 el("span", "badge talking-badge", "Talking"));
    const meter = el("div", "meter");
    meter.setAttribute("role", "meter");
    meter.setAttribute("aria-label", "Voice level");
    meter.setAttribute("aria-valuemin", String(METER_FLOOR));
    meter.setAttribute("aria-valuemax", "0");
    meter.append(el("span", "meter-fill"));
    const actions = el("div", "participant-actions");
    actions.append(button("Mute", "mute", "mute"), button("Hold", "hold", "hold"),
                   button("Kick", "kick", "danger kick"));
    item.append(talk, who, facts, meter, actions);
    return item;
  }

  function showLevel(item, level, talking) {
    item.dataset.talking = talking ? "true" : "false";
    const clamped = Math.max(METER_FLOOR, Math.min(0, Number(level)));
    const fill = item.querySelector(".meter-fill");
    fill.style.width = `${Math.round(((clamped - METER_FLOOR) / -METER_FLOOR) * 100)}%`;
    item.querySelector(".meter").setAttribute("aria-valuenow", String(Math.round(clamped)));
  }

  function showPerson(item, p) {
    const caller = callers[p.call_sid] || p.caller || "";
    if (p.caller) callers[p.call_sid] = p.caller;
    item.querySelector(".caller").textContent = caller || p.label || "Unknown caller";
    item.querySelector(".label").textContent = caller && p.label ? p.label : "";
    const sinceNode = item.querySelector(".since");
    sinceNode.dataset.joined = String(p.joined_at);
    sinceNode.textContent = since(p.joined_at);
    item.dataset.muted = p.muted ? "true" : "false";
    item.dataset.held = p.held ? "true" : "false";
    const mute = item.querySelector(".mute");
    mute.textContent = p.muted ? "Unmute" : "Mute";
    mute.dataset.action = p.muted ? "unmute" : "mute";
    mute.setAttribute("aria-pressed", p.muted ? "true" : "false");
    const hold = item.querySelector(".hold");
    hold.textContent = p.held ? "Take off hold" : "Hold";
    hold.dataset.action = p.held ? "unhold" : "hold";
    hold.setAttribute("aria-pressed", p.held ? "true" : "false");
    showLevel(item, p.level_dbfs, p.talking);
    return !caller;
  }

  function showRoom(room) {
    if (room.state === "ended") {
      removeRoom(room.sid);
      return;
    }
    const card = findRoom(room.sid) || newRoom(room);
    card.dataset.state = room.state;
    const badge = card.querySelector(".room-state");
    badge.dataset.state = room.state;
    badge.textContent = ROOM_STATES[room.state] || room.state;
    const count = room.participants.length;
    card.querySelector(".room-count").textContent = `${count} ${count === 1 ? "person" : "people"}`;
    const people = card.querySelector(".participants");
    const existing = new Map(Array.from(people.children).map((n) => [n.dataset.callSid, n]));
    let unknown = false;
    const items = room.participants.map((p) => {
      const item = existing.get(p.call_sid) || newPerson(p);
      unknown = showPerson(item, p) || unknown;
      return item;
    });
    people.replaceChildren(...items);
    empty.hidden = true;
    if (unknown) refreshCallers();
  }

  function removeRoom(sid) {
    const card = findRoom(sid);
    if (card) card.remove();
    empty.hidden = list.children.length > 0;
  }

  function showSnapshot(data) {
    if (typeof data.now === "number") clockOffset = data.now - Date.now() / 1000;
    Object.assign(callers, data.callers || {});
    const lines = data.lines || {};
    for (const item of Array.from(strip.children)) {
      if (!(item.dataset.line in lines)) item.remove();
    }
    for (const name of Object.keys(lines).sort()) showLine(name, lines[name]);
    const rooms = data.conferences || [];
    const sids = new Set(rooms.map((room) => room.sid));
    for (const card of Array.from(list.children)) {
      if (!sids.has(card.dataset.sid)) card.remove();
    }
    rooms.forEach(showRoom);
    empty.hidden = rooms.length > 0;
  }

  // A participant whose call rang before this page connected: ask for the callers once.
  function refreshCallers() {
    if (refreshing) return;
    refreshing = true;
    fetch("/api/live", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((reply) => (reply.ok ? reply.json() : null))
      .then((data) => {
        if (!data) return;
        Object.assign(callers, data.callers || {});
        (data.conferences || []).forEach(showRoom);
      })
      .catch(() => {})
      .finally(() => { refreshing = false; });
  }

  function onRoomEvent(event) {
    const data = JSON.parse(event.data);
    if (data.state === "ended") {
      removeRoom(data.conference_sid);
      return;
    }
    showRoom({ sid: data.conference_sid, name: data.conference, state: data.state,
               participants: data.participants || [] });
  }

  function onLevels(event) {
    const data = JSON.parse(event.data);
    const card = findRoom(data.conference_sid);
    if (!card) return;
    for (const item of card.querySelectorAll(".participant")) {
      const level = (data.levels || {})[item.dataset.callSid];
      if (level) showLevel(item, level.level_dbfs, level.talking);
    }
  }

  // --- actions ---------------------------------------------------------------------------

  function post(path) {
    return fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": csrf ? csrf.content : "" },
    }).then((reply) => reply.json().catch(() => ({})).then((body) => {
      if (reply.status === 401) window.location.assign("/login");
      if (!reply.ok) throw new Error(body.error || `The appliance answered ${reply.status}.`);
      return body;
    }));
  }

  list.addEventListener("click", (event) => {
    const target = event.target.closest("button[data-action]");
    if (!target) return;
    const card = target.closest(".room");
    const action = target.dataset.action;
    const roomError = card.querySelector(".room-error");
    let path = `/api/live/${encodeURIComponent(card.dataset.sid)}`;
    if (action === "end") {
      if (!window.confirm(`End the conference “${card.dataset.name}” for everyone in it?`)) return;
      path += "/end";
    } else {
      const item = target.closest(".participant");
      if (action === "kick") {
        const who = item.querySelector(".caller").textContent;
        if (!window.confirm(`Remove ${who} from the conference?`)) return;
      }
      path += `/${encodeURIComponent(item.dataset.callSid)}/${action}`;
    }
    target.disabled = true;
    roomError.hidden = true;
    post(path)
      .then((body) => { if (body.conference) showRoom(body.conference); })
      .catch((error) => {
        roomError.textContent = error.message;
        roomError.hidden = false;
        refreshCallers(); // the room may have changed under us: redraw it from the appliance
      })
      .finally(() => { target.disabled = false; });
  });

  // --- the stream ------------------------------------------------------------------------

  function setLive(state, text) {
    live.dataset.live = state;
    live.textContent = text;
  }

  function recover() {
    fetch("/api/live", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((reply) => {
        if (reply.status === 401) window.location.assign("/login");
        else window.setTimeout(connect, 3000);
      })
      .catch(() => window.setTimeout(recover, 5000));
  }

  function connect() {
    setLive("connecting", "Connecting…");
    const source = new EventSource("/events");
    source.addEventListener("open", () => { setLive("on", "Live"); showError(""); });
    source.addEventListener("snapshot", (event) => showSnapshot(JSON.parse(event.data)));
    source.addEventListener("line.status", (event) => {
      const data = JSON.parse(event.data);
      showLine(data.line, { state: data.state, detail: data.detail });
    });
    source.addEventListener("call.ringing", (event) => {
      const data = JSON.parse(event.data);
      if (data.caller) callers[data.call_sid] = data.caller;
    });
    for (const kind of ROOM_EVENTS) source.addEventListener(`conference.${kind}`, onRoomEvent);
    source.addEventListener("conference.end", (event) => {
      removeRoom(JSON.parse(event.data).conference_sid);
    });
    source.addEventListener("conference.level", onLevels);
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

  window.setInterval(tickClocks, 500);
  connect();
})();
