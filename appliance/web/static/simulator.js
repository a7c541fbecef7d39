// The simulator page: keeps each line's state current (polling /simulator/status) and shows
// only the forms that make sense in that state (data-when lists them).
"use strict";

(function () {
  const list = document.getElementById("sim-lines");
  const note = document.getElementById("sim-poll");
  if (!list) return;
  const EVERY_MS = 1000;

  function apply(line) {
    const card = list.querySelector('.sim-line[data-line="' + CSS.escape(line.name) + '"]');
    if (!card) return false;
    card.dataset.state = line.state;
    const state = card.querySelector(".state");
    state.dataset.state = line.state;
    state.textContent = line.label;
    const caller = card.querySelector(".sim-caller");
    caller.hidden = !line.caller_id;
    caller.querySelector(".caller-id").textContent = line.caller_id;
    card.querySelectorAll("[data-when]").forEach((form) => {
      form.hidden = !form.dataset.when.split(" ").includes(line.state);
    });
    return true;
  }

  async function poll() {
    try {
      const reply = await fetch("/simulator/status", { headers: { Accept: "application/json" } });
      if (reply.status === 401 || reply.status === 403) { window.location.reload(); return; }
      if (!reply.ok) throw new Error("status " + reply.status);
      const body = await reply.json();
      const known = body.lines.every(apply);
      if (!known || body.lines.length !== list.children.length) { window.location.reload(); return; }
      note.textContent = "";
    } catch (error) {
      note.textContent = "Cannot reach the appliance; retrying…";
    }
    window.setTimeout(poll, EVERY_MS);
  }
  window.setTimeout(poll, EVERY_MS);
})();
