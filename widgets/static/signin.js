// Who the person is, for every Parta widget page: inside a Matrix client the Widget API
// (matrix-widget-api, vendored) gives an OpenID token; standalone (phones, clients without
// widgets) the page signs in at the homeserver with a password and asks for the token.
// A classic script that defines `PartaSignIn`, so both module and classic pages use it.
"use strict";

window.PartaSignIn = (() => {
  // The Widget API starts with the page: the client asks for the widget's capabilities as
  // soon as the frame has loaded, and a widget that is not listening yet never gets ready.
  function startWidget(params) {
    const widgetId = params.get("widgetId");
    if (!widgetId || !window.mxwidgets) return null;
    // The vendored browser build defines `mxwidgets` as a function that returns the exports.
    const mx = typeof mxwidgets === "function" ? mxwidgets() : mxwidgets;
    const parentUrl = params.get("parentUrl");
    const api = new mx.WidgetApi(widgetId, parentUrl ? new URL(parentUrl).origin : "*");
    const ready = new Promise((resolve) => api.once("ready", resolve));
    api.start();
    if (params.get("waitForIframeLoad") === "false") api.sendContentLoaded();
    return { api, ready };
  }

  async function homeserver(baseUrl, accessToken, path, options = {}) {
    const headers = { "Content-Type": "application/json" };
    if (accessToken) headers.Authorization = `Bearer ${accessToken}`;
    const answer = await fetch(baseUrl + path, { ...options, headers });
    const body = await answer.json().catch(() => ({}));
    if (!answer.ok) throw Object.assign(new Error(body.error || answer.statusText), { status: answer.status });
    return body;
  }

  // A password sign-in; the session is kept for this tab only, under `storageKey`.
  async function signIn(baseUrl, user, password, deviceName, storageKey) {
    const body = await homeserver(baseUrl, null, "/_matrix/client/v3/login", {
      method: "POST",
      body: JSON.stringify({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: String(user).trim() },
        password: String(password),
        initial_device_display_name: deviceName,
      }),
    });
    const session = { accessToken: body.access_token, userId: body.user_id };
    sessionStorage.setItem(storageKey, JSON.stringify(session));
    return session;
  }

  function savedSession(storageKey) {
    const saved = sessionStorage.getItem(storageKey);
    return saved ? JSON.parse(saved) : null;
  }

  // The OpenID token the widget service verifies at the person's own homeserver.
  async function openidToken(widget, baseUrl, session) {
    if (widget) {
      await widget.ready;
      // The client asks its person once whether the widget may know who they are.
      return await widget.api.requestOpenIDConnectToken();
    }
    if (!session) return null;
    const user = encodeURIComponent(session.userId);
    return await homeserver(baseUrl, session.accessToken,
      `/_matrix/client/v3/user/${user}/openid/request_token`, { method: "POST", body: "{}" });
  }

  return { startWidget, homeserver, signIn, savedSession, openidToken };
})();
