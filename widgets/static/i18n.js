// The language of a Parta widget page and its words: Russian unless the page's `lang`
// parameter (set by the Matrix client) or, without it, the browser asks for English.
// Each page keeps its own catalogue, `{ru: {key: text}, en: {...}}`; this file only picks
// from it. A classic script that defines `PartaI18n`, so module and classic pages use it.
"use strict";

window.PartaI18n = (() => {
  function language(params) {
    return (params.get("lang") || navigator.language || "ru").toLowerCase().startsWith("en") ? "en" : "ru";
  }

  // `t(key, vars)`: the text in `lang`, else in Russian, else the key; `{name}` filled from `vars`.
  function translator(catalogue, lang) {
    return (key, vars = {}) =>
      (catalogue[lang][key] || catalogue.ru[key] || key).replace(/\{(\w+)\}/g, (_, name) => vars[name] ?? "");
  }

  // Fills the page's fixed words: `data-t` names an element's text, `data-tp` its placeholder.
  function translatePage(t, lang) {
    document.documentElement.lang = lang;
    for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
    for (const node of document.querySelectorAll("[data-tp]")) node.placeholder = t(node.dataset.tp);
  }

  return { language, translator, translatePage };
})();
