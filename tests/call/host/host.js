// A Matrix client's widget host, as Element is one, for the tests: it embeds the call
// widget and answers its Widget API requests with matrix-widget-api's ClientWidgetApi.
// The OpenID token it hands out is a real one that the test got from the real Synapse.
"use strict";

// The vendored browser build defines `mxwidgets` as a function that returns the exports.
const mx = typeof mxwidgets === "function" ? mxwidgets() : mxwidgets;
const query = new URLSearchParams(location.search);
const token = JSON.parse(query.get("token"));
window.openidAsked = 0;

class TestDriver extends mx.WidgetDriver {
  async validateCapabilities(requested) {
    return requested;
  }

  askOpenID(observer) {
    window.openidAsked += 1;
    observer.update({ state: mx.OpenIDRequestState.Allowed, token });
  }
}

const widgetId = "parta-call-test";
const url = new URL(query.get("widget"));
url.searchParams.set("widgetId", widgetId);
url.searchParams.set("parentUrl", location.href);
const widget = new mx.Widget({
  id: widgetId,
  creatorUserId: token.user_id || "@test:localhost",
  type: "m.custom",
  url: url.toString(),
});
const iframe = document.getElementById("widget");
window.clientApi = new mx.ClientWidgetApi(widget, iframe, new TestDriver());
iframe.src = url.toString();
