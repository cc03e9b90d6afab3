// Making and finding elements on a Parta widget page, the same way on every page.
// A classic script that defines `PartaDom`, so module and classic pages use it.
"use strict";

window.PartaDom = (() => {
  const byId = (id) => document.getElementById(id);

  // `element("td", {class: "size"}, text, child)`; `onclick` becomes a listener, and
  // attributes that are null or undefined are left out.
  function element(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "onclick") node.addEventListener("click", value);
      else if (value !== undefined && value !== null) node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  return { byId, element };
})();
