// Show a message when an htmx request fails (403, 500, no network), instead of nothing.
document.addEventListener("htmx:responseError", showFailure);
document.addEventListener("htmx:sendError", showFailure);

function showFailure() {
  const banner = document.getElementById("failure");
  if (!banner) return;
  banner.textContent = document.body.dataset.failedText || "Error";
  banner.hidden = false;
}
