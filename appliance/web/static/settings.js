// The settings page: confirm before replacing the API auth token; select the new one on focus.
"use strict";

(function () {
  const rotate = document.getElementById("rotate-form");
  if (rotate) {
    rotate.addEventListener("submit", (event) => {
      const sure = window.confirm(
        "Make a new auth token? Scripts and webhook receivers using the old one stop working " +
        "until you give them the new one.");
      if (!sure) event.preventDefault();
    });
  }
  const token = document.getElementById("new-token");
  if (token) {
    token.addEventListener("focus", () => token.select());
    token.focus();
  }
})();
