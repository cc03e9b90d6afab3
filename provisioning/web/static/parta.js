// Show a message when an htmx request fails (403, 500, no network), instead of nothing.
document.addEventListener("htmx:responseError", showFailure);
document.addEventListener("htmx:sendError", showFailure);

function showFailure() {
  const banner = document.getElementById("failure");
  if (!banner) return;
  banner.textContent = document.body.dataset.failedText || "Error";
  banner.hidden = false;
}

// The countdown before a new SMS code may be asked for (the server refuses earlier anyway).
document.addEventListener("DOMContentLoaded", () => {
  const button = document.getElementById("send-code");
  const countdown = document.getElementById("code-countdown");
  if (!button || !countdown) return;
  let left = parseInt(button.dataset.wait || "0", 10);
  if (!(left > 0)) return;
  const template = countdown.dataset.template || "";
  const tick = () => {
    left -= 1;
    if (left <= 0) {
      clearInterval(timer);
      countdown.hidden = true;
      button.disabled = false;
      return;
    }
    countdown.textContent = template.replace("__S__", String(left));
  };
  const timer = setInterval(tick, 1000);
});
