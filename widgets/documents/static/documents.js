// The documents page: my files and my rooms' files, as a widget in a Matrix client (the
// Widget API gives an OpenID token) or standalone with a Matrix sign-in (phones).
// The service checks every request; this page only shows what it is given.
import { PdfView } from "/static/pdf-view.js";

const TEXT = {
  ru: {
    sign_in_title: "Документы", sign_in_hint: "Войдите с именем пользователя и паролем Парты.",
    user_name: "Имя пользователя", password: "Пароль", sign_in: "Войти",
    search: "Поиск по названию", kind_all: "Все файлы", kind_office: "Презентации и документы",
    kind_image: "Изображения", kind_video: "Видео", kind_audio: "Аудио", kind_other: "Другое",
    sort_newest: "Сначала новые", sort_oldest: "Сначала старые", sort_name: "По названию",
    sort_size: "По размеру", upload: "Загрузить", drop_hint: "Перетащите файлы сюда или нажмите «Загрузить»",
    col_name: "Название", col_size: "Размер", col_date: "Добавлен", empty: "Здесь пока нет файлов.",
    open: "Открыть", download: "Скачать", share: "Отправить", rename: "Переименовать",
    delete: "Удалить", prev: "Назад", next: "Вперёд", close: "Закрыть",
    share_title: "Отправить в чат", cancel: "Отмена", mine: "Мои документы",
    rename_prompt: "Новое название файла", delete_confirm: "Удалить «{name}»? Его удалят и из чата.",
    shared: "Файл отправлен в чат «{room}».", uploaded: "Загружен", converting: "Готовим просмотр…",
    error_login: "Неверное имя пользователя или пароль.",
    error_session: "Не удалось войти. Обновите страницу.",
    PARTA_EMPTY_FILE: "Файл пустой — в нём нечего хранить.",
    PARTA_TOO_LARGE: "Файл слишком большой для загрузки.",
    PARTA_QUOTA: "Место для ваших файлов закончилось. Удалите ненужные.",
    PARTA_BAD_NAME: "Такое название файла нельзя использовать (без / и \\).",
    PARTA_READ_ONLY: "В этот чат пишут только учителя и администрация.",
    PARTA_NO_PREVIEW: "Этот файл нельзя показать здесь, но его можно скачать.",
    PARTA_HOMESERVER_UNAVAILABLE: "Сервер сейчас не отвечает. Попробуйте через минуту.",
    PARTA_OTHER_REGION: "Ваши документы хранит сервер вашего региона.",
    M_FORBIDDEN: "У вас нет доступа к этому.", M_NOT_FOUND: "Такого файла здесь нет.",
    M_UNKNOWN_TOKEN: "Вход истёк. Обновите страницу.",
    PARTA_TOO_MANY_SESSIONS: "С этим входом открыто слишком много страниц документов. Закройте лишние или войдите снова.",
    M_TOO_LARGE: "Это слишком большой запрос для сервера. Уменьшите файл или разделите его на части.",
    preview_damaged: "Файл повреждён, просмотр невозможен. Его можно скачать.",
    preview_timeout: "Файл слишком долго готовился к просмотру. Его можно скачать.",
    preview_failed: "Этот файл не удалось подготовить к просмотру. Его можно скачать.",
    preview_no_converter: "На этом сервере нельзя смотреть офисные файлы. Его можно скачать.",
    error_unknown: "Что-то пошло не так. Попробуйте ещё раз.",
    tab_files: "Файлы", tab_library: "Библиотека", library_title: "Проверенная библиотека",
    library_hint: "Материалы для учителей и учеников, проверенные в регионе: откройте, сохраните себе или отправьте в чат.",
    subject_all: "Все предметы", grade_all: "Все классы", grade_one: "{n} класс",
    grade_range: "{from}–{to} класс", library_search: "Поиск по тексту", find: "Найти",
    library_empty: "Ничего не нашлось. Выберите другой предмет или класс или измените запрос.",
    send_to_chat: "Отправить в чат", save_mine: "Сохранить в мои документы", open_link: "Открыть ссылку",
    licence: "Лицензия", source: "Источник", verified_by: "Проверил",
    library_shared: "«{title}» отправлено в чат «{room}».", library_saved: "«{title}» сохранено в «Мои документы».",
    no_rooms: "Нет чатов, куда можно отправить.",
    PARTA_LIBRARY_REFUSED: "Библиотека — для учителей и учеников. Родители видят то, что учителя присылают в чаты класса.",
    PARTA_LIBRARY_UNAVAILABLE: "Библиотека сейчас не отвечает. Попробуйте через минуту.",
    PARTA_LIBRARY_NO_ITEM: "Этот материал убрали из библиотеки.",
    PARTA_NO_LIBRARY: "На этом сервере нет библиотеки.",
  },
  en: {
    sign_in_title: "Documents", sign_in_hint: "Sign in with your Parta user name and password.",
    user_name: "User name", password: "Password", sign_in: "Sign in",
    search: "Search by name", kind_all: "All files", kind_office: "Presentations and documents",
    kind_image: "Images", kind_video: "Video", kind_audio: "Audio", kind_other: "Other",
    sort_newest: "Newest first", sort_oldest: "Oldest first", sort_name: "By name",
    sort_size: "By size", upload: "Upload", drop_hint: "Drop files here or press “Upload”",
    col_name: "Name", col_size: "Size", col_date: "Added", empty: "No files here yet.",
    open: "Open", download: "Download", share: "Send", rename: "Rename",
    delete: "Delete", prev: "Previous", next: "Next", close: "Close",
    share_title: "Send to a chat", cancel: "Cancel", mine: "My documents",
    rename_prompt: "New file name", delete_confirm: "Delete “{name}”? It goes from the chat too.",
    shared: "The file was sent to “{room}”.", uploaded: "Uploaded", converting: "Preparing the preview…",
    error_login: "Wrong user name or password.",
    error_session: "Could not sign in. Reload the page.",
    PARTA_EMPTY_FILE: "The file is empty: there is nothing to keep.",
    PARTA_TOO_LARGE: "The file is too large to upload.",
    PARTA_QUOTA: "Your storage is full. Delete files you no longer need.",
    PARTA_BAD_NAME: "This file name cannot be used (no / or \\).",
    PARTA_READ_ONLY: "Only teachers and the administration post in this chat.",
    PARTA_NO_PREVIEW: "This file cannot be shown here, but it can be downloaded.",
    PARTA_HOMESERVER_UNAVAILABLE: "The server does not answer right now. Try again in a minute.",
    PARTA_OTHER_REGION: "Your documents are kept by your own region's server.",
    M_FORBIDDEN: "You have no access to this.", M_NOT_FOUND: "There is no such file here.",
    M_UNKNOWN_TOKEN: "Your sign-in has expired. Reload the page.",
    PARTA_TOO_MANY_SESSIONS: "Too many documents pages are open with this sign-in. Close the ones you do not use, or sign in again.",
    M_TOO_LARGE: "This request is too large for the server. Make the file smaller or split it.",
    preview_damaged: "The file is damaged and cannot be shown. It can be downloaded.",
    preview_timeout: "The file took too long to prepare. It can be downloaded.",
    preview_failed: "This file could not be prepared for viewing. It can be downloaded.",
    preview_no_converter: "Office files cannot be shown on this server. It can be downloaded.",
    error_unknown: "Something went wrong. Try again.",
    tab_files: "Files", tab_library: "Library", library_title: "Verified library",
    library_hint: "Materials for teachers and pupils, checked by the region: open them, keep them in your documents or send them to a chat.",
    subject_all: "All subjects", grade_all: "All grades", grade_one: "Grade {n}",
    grade_range: "Grades {from}–{to}", library_search: "Search the text", find: "Find",
    library_empty: "Nothing found. Choose another subject or grade, or change the search.",
    send_to_chat: "Send to chat", save_mine: "Save to my documents", open_link: "Open the link",
    licence: "Licence", source: "Source", verified_by: "Verified by",
    library_shared: "“{title}” was sent to “{room}”.", library_saved: "“{title}” was saved to “My documents”.",
    no_rooms: "There is no chat to send it to.",
    PARTA_LIBRARY_REFUSED: "The library is for teachers and pupils. Parents see what teachers send to the class chats.",
    PARTA_LIBRARY_UNAVAILABLE: "The library does not answer right now. Try again in a minute.",
    PARTA_LIBRARY_NO_ITEM: "This material was withdrawn from the library.",
    PARTA_NO_LIBRARY: "This server has no library.",
  },
};

const params = new URLSearchParams(location.search);
const lang = PartaI18n.language(params);
const t = PartaI18n.translator(TEXT, lang);
const { byId: $, element } = PartaDom;

const state = {
  config: null,
  widget: null, // {api, ready} inside a Matrix client
  matrix: null, // {accessToken, userId} when signed in by this page
  session: null, // the documents service's token
  userId: null,
  rooms: [],
  mine: null,
  roomId: params.get("room_id") || null,
  files: [],
  viewer: null, // a PdfView while a PDF is open
  library: false, // a teacher, pupil or administrator: the page shows the library tab
  tab: "files",
  items: [],
};

function notice(text) {
  const node = $("notice");
  node.textContent = text;
  node.hidden = false;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { node.hidden = true; }, 4000);
}

function errorText(body) {
  return TEXT[lang][body?.errcode] ? t(body.errcode) : body?.error || t("error_unknown");
}

// --- who are you ---------------------------------------------------------------------

const SESSION_KEY = "parta-documents-matrix";

const openidToken = () =>
  PartaSignIn.openidToken(state.widget, state.config.homeserver_url, state.matrix);

async function openSession() {
  const answer = await fetch("/documents/api/session", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ openid: await openidToken() }),
  });
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok) throw Object.assign(new Error(errorText(body)), { body });
  state.session = body.token;
  state.userId = body.user_id;
  // Renew before the service's session ends, so a long lesson never signs anyone out.
  setTimeout(() => openSession().catch(() => {}), Math.max(60, body.expires_in - 300) * 1000);
}

async function signIn(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  $("login-error").hidden = true;
  try {
    state.matrix = await PartaSignIn.signIn(state.config.homeserver_url, form.get("user"),
      form.get("password"), "Документы Парты", SESSION_KEY);
    await start();
  } catch (error) {
    $("login-error").textContent = t("error_login");
    $("login-error").hidden = false;
  }
}

// --- the service -----------------------------------------------------------------------

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${state.session}`, ...(options.headers || {}) };
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options = { ...options, body: JSON.stringify(options.json) };
  }
  const answer = await fetch(`/documents/api${path}`, { ...options, headers });
  if (answer.status === 204) return null;
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok) throw Object.assign(new Error(errorText(body)), { body, status: answer.status });
  return body;
}

const roomPath = (roomId) => `/rooms/${encodeURIComponent(roomId)}/files`;
const roomName = (room) => (room.mine ? t("mine") : room.name);

async function loadRooms() {
  const body = await api("/rooms");
  state.rooms = body.rooms;
  state.mine = body.mine;
  state.library = body.library === true;
  $("tabs").hidden = !state.library;
  if (!state.roomId || !state.rooms.some((r) => r.room_id === state.roomId)) state.roomId = body.mine;
  renderRooms();
}

function renderRooms() {
  const ordered = [...state.rooms].sort((a, b) => (b.mine - a.mine) || roomName(a).localeCompare(roomName(b)));
  $("rooms").replaceChildren(...ordered.map((room) => element("button", {
    "aria-current": String(room.room_id === state.roomId),
    "data-room": room.room_id,
    onclick: () => { state.roomId = room.room_id; showTab("files"); renderRooms(); loadFiles(); },
  }, roomName(room))));
  const current = state.rooms.find((r) => r.room_id === state.roomId);
  $("room-name").textContent = current ? roomName(current) : "";
}

async function loadFiles() {
  const [sort, order] = $("sort").value.split(":");
  const query = new URLSearchParams({ q: $("search").value.trim(), sort, order });
  if ($("kind").value) query.set("kind", $("kind").value);
  $("files-error").hidden = true;
  try {
    state.files = (await api(`${roomPath(state.roomId)}?${query}`)).files;
  } catch (error) {
    state.files = [];
    $("files-error").textContent = error.message;
    $("files-error").hidden = false;
  }
  renderFiles();
}

function size(bytes) {
  const units = lang === "en" ? ["B", "KB", "MB", "GB"] : ["Б", "КБ", "МБ", "ГБ"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

function renderFiles() {
  const dates = new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" });
  $("list").tBodies[0].replaceChildren(...state.files.map((file) => {
    const own = file.sender === state.userId;
    const actions = element("td", { class: "actions" },
      element("button", { class: "secondary", onclick: () => view(file) }, t("open")),
      element("a", { class: "button secondary", href: `${file.content_url}`, download: file.name }, t("download")),
      element("button", { class: "secondary", onclick: () => share(file) }, t("share")));
    if (own) {
      actions.append(
        element("button", { class: "secondary", onclick: () => rename(file) }, t("rename")),
        element("button", { class: "danger", onclick: () => remove(file) }, t("delete")));
    }
    return element("tr", { "data-event": file.event_id },
      element("td", {}, file.name), element("td", {}, size(file.size)),
      element("td", {}, dates.format(new Date(file.sent_at_ms))), actions);
  }));
  $("empty").hidden = state.files.length > 0;
}

// --- uploads: several at once, each with its progress --------------------------------------

function upload(files) {
  for (const file of files) uploadOne(file, state.roomId);
}

function uploadOne(file, roomId) {
  const bar = element("progress", { max: "100", value: "0" });
  const status = element("span", { class: "muted" }, "");
  const row = element("li", { "data-name": file.name }, element("span", {}, file.name), bar, status);
  $("uploads").append(row);
  const request = new XMLHttpRequest();
  request.open("POST", `/documents/api${roomPath(roomId)}?name=${encodeURIComponent(file.name)}`);
  request.setRequestHeader("Authorization", `Bearer ${state.session}`);
  request.setRequestHeader("Content-Type", file.type || "application/octet-stream");
  request.upload.onprogress = (event) => {
    if (!event.lengthComputable) return;
    bar.value = Math.round((event.loaded / event.total) * 100);
    if (event.loaded === event.total && /\.(pptx?|odp|docx?|odt|xlsx)$/i.test(file.name)) status.textContent = t("converting");
  };
  request.onload = () => {
    let body = {};
    try { body = JSON.parse(request.responseText); } catch (_) { /* not JSON */ }
    if (request.status === 201) {
      row.remove();
      notice(`${t("uploaded")}: ${file.name}`);
      if (roomId === state.roomId) loadFiles();
    } else {
      bar.remove();
      status.className = "error";
      status.textContent = errorText(body);
    }
  };
  request.onerror = () => { status.className = "error"; status.textContent = t("PARTA_HOMESERVER_UNAVAILABLE"); };
  request.send(file);
}

// --- viewing -----------------------------------------------------------------------------

async function view(file) {
  $("viewer-name").textContent = file.name;
  $("viewer-download").href = file.content_url;
  $("viewer-download").setAttribute("download", file.name);
  $("stage").replaceChildren();
  $("page").textContent = "";
  for (const id of ["prev", "next"]) $(id).hidden = true;
  $("viewer").hidden = false;
  state.viewer = null;
  if (file.pdf_url) return await openPdf(file.pdf_url);
  if (file.preview_error) return message(t(`preview_${file.preview_error}`));
  const tags = { image: "img", video: "video", audio: "audio" };
  const tag = tags[file.kind];
  if (!tag) return message(t("PARTA_NO_PREVIEW"));
  const media = element(tag, { src: file.content_url, alt: file.name });
  if (tag !== "img") media.controls = true;
  $("stage").append(media);
}

function message(text) {
  $("stage").replaceChildren(element("p", { class: "muted", id: "viewer-message" }, text));
}

async function openPdf(url) {
  state.viewer = new PdfView($("stage"));
  await state.viewer.open(url);
  for (const id of ["prev", "next"]) $(id).hidden = false;
  await showPage(1);
}

async function showPage(number) {
  const viewer = state.viewer;
  if (!viewer || !viewer.pdf || number < 1 || number > viewer.pages) return;
  if (!(await viewer.show(number))) return; // another page was asked for meanwhile
  $("page").textContent = `${viewer.page} / ${viewer.pages}`;
  $("page").dataset.page = String(viewer.page);
}

function closeViewer() {
  $("viewer").hidden = true;
  if (state.viewer) state.viewer.close();
  state.viewer = null;
  $("stage").replaceChildren();
}

// --- sharing, renaming, deleting -------------------------------------------------------------

// The room picker: resolves to the chosen room, or null when cancelled.
function pickRoom(targets) {
  $("share-room").replaceChildren(...targets.map((r) => element("option", { value: r.room_id }, roomName(r))));
  const dialog = $("share-dialog");
  return new Promise((resolve) => {
    dialog.onclose = () => {
      const chosen = dialog.returnValue === "share" && $("share-room").value;
      resolve(chosen ? state.rooms.find((r) => r.room_id === chosen) : null);
    };
    dialog.returnValue = "";
    dialog.showModal();
  });
}

async function share(file) {
  const target = await pickRoom(state.rooms.filter((r) => r.room_id !== file.room_id));
  if (!target) return;
  try {
    await api(`${roomPath(file.room_id)}/${encodeURIComponent(file.event_id)}/share`, {
      method: "POST", json: { room_id: target.room_id },
    });
    notice(t("shared", { room: roomName(target) }));
  } catch (error) {
    notice(error.message);
  }
}

async function rename(file) {
  const name = prompt(t("rename_prompt"), file.name);
  if (!name || name === file.name) return;
  try {
    await api(`${roomPath(file.room_id)}/${encodeURIComponent(file.event_id)}`, { method: "PATCH", json: { name } });
    await loadFiles();
  } catch (error) {
    notice(error.message);
  }
}

async function remove(file) {
  if (!confirm(t("delete_confirm", { name: file.name }))) return;
  try {
    await api(`${roomPath(file.room_id)}/${encodeURIComponent(file.event_id)}`, { method: "DELETE" });
    await loadFiles();
  } catch (error) {
    notice(error.message);
  }
}

// --- the verified library (teachers and pupils; the service checks that too) ----------------

function showTab(tab) {
  state.tab = state.library ? tab : "files";
  $("files-panel").hidden = state.tab !== "files";
  $("library-panel").hidden = state.tab !== "library";
  $("tab-files").setAttribute("aria-selected", String(state.tab === "files"));
  $("tab-library").setAttribute("aria-selected", String(state.tab === "library"));
  if (state.tab === "library") {
    for (const button of $("rooms").querySelectorAll("button")) button.setAttribute("aria-current", "false");
    loadLibrary();
  } else {
    renderRooms();
  }
}

function libraryError(text) {
  $("library-error").textContent = text || "";
  $("library-error").hidden = !text;
}

// Each change of the filters asks again; answers can come back out of order (a slow
// answer to the subject alone after the one for subject and grade), so only the answer
// to the latest question is shown.
let librarySearch = 0;

async function loadLibrary() {
  const query = new URLSearchParams({ subject: $("library-subject").value, q: $("library-q").value.trim() });
  if ($("library-grade").value) query.set("grade", $("library-grade").value);
  const asked = ++librarySearch;
  libraryError("");
  let items = [];
  let subjects = null;
  let problem = "";
  try {
    const body = await api(`/library?${query}`);
    items = body.items;
    subjects = body.subjects;
  } catch (error) {
    problem = error.message;
  }
  if (asked !== librarySearch) return; // a newer question was asked meanwhile
  state.items = items;
  if (subjects) renderSubjects(subjects);
  libraryError(problem);
  renderLibrary();
}

function renderSubjects(subjects) {
  const select = $("library-subject");
  const chosen = select.value;
  const names = [...new Set([...subjects, ...(chosen ? [chosen] : [])])].sort((a, b) => a.localeCompare(b));
  select.replaceChildren(element("option", { value: "" }, t("subject_all")),
    ...names.map((name) => element("option", { value: name }, name)));
  select.value = chosen;
}

const grades = (item) => (item.grade_from === item.grade_to
  ? t("grade_one", { n: item.grade_from })
  : t("grade_range", { from: item.grade_from, to: item.grade_to }));

function renderLibrary() {
  $("library-list").replaceChildren(...state.items.map((item) => {
    const actions = element("div", { class: "actions" },
      element("button", { class: "send", onclick: () => sendItem(item) }, t("send_to_chat")));
    if (item.kind === "file") {
      actions.append(element("button", { class: "secondary save", onclick: () => saveItem(item) }, t("save_mine")));
    } else {
      actions.append(element("a", { class: "button secondary", href: item.url, target: "_blank", rel: "noopener noreferrer" }, t("open_link")));
    }
    const what = item.kind === "file" ? `${item.file_name}${item.size ? ` · ${size(item.size)}` : ""}` : item.url;
    return element("li", { "data-item": String(item.id) },
      element("h3", {}, item.title),
      element("p", { class: "meta" }, `${item.subject} · ${grades(item)} · ${what}`),
      ...(item.description ? [element("p", {}, item.description)] : []),
      element("p", { class: "muted provenance" },
        `${t("licence")}: ${item.licence} · ${t("source")}: ${item.source} · ${t("verified_by")}: ${item.verified_by}`),
      actions);
  }));
  $("library-empty").hidden = state.items.length > 0 || !$("library-error").hidden;
}

async function shareItem(item, target) {
  await api(`/library/${encodeURIComponent(item.id)}/share`, { method: "POST", json: { room_id: target.room_id } });
}

async function sendItem(item) {
  const targets = state.rooms.filter((r) => !r.mine);
  if (!targets.length) return libraryError(t("no_rooms"));
  const target = await pickRoom(targets);
  if (!target) return;
  libraryError("");
  try {
    await shareItem(item, target);
    notice(t("library_shared", { title: item.title, room: roomName(target) }));
  } catch (error) {
    libraryError(error.message);
  }
}

async function saveItem(item) {
  const mine = state.rooms.find((r) => r.room_id === state.mine) || { room_id: state.mine, mine: true };
  libraryError("");
  try {
    await shareItem(item, mine);
    notice(t("library_saved", { title: item.title }));
  } catch (error) {
    libraryError(error.message);
  }
}

// --- start -----------------------------------------------------------------------------------

async function start() {
  $("login").hidden = true;
  try {
    await openSession();
    await loadRooms();
  } catch (error) {
    $("files-error").textContent = error.body ? error.message : t("error_session");
    $("files-error").hidden = false;
  }
  $("files").hidden = false;
  if (state.session) await loadFiles();
}

function wire() {
  $("login-form").addEventListener("submit", signIn);
  $("upload").addEventListener("change", (event) => { upload(event.target.files); event.target.value = ""; });
  let typing = null;
  $("search").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(loadFiles, 250); });
  $("kind").addEventListener("change", loadFiles);
  $("tab-files").addEventListener("click", () => showTab("files"));
  $("tab-library").addEventListener("click", () => showTab("library"));
  $("library-grade").append(...Array.from({ length: 11 }, (_, i) =>
    element("option", { value: String(i + 1) }, t("grade_one", { n: i + 1 }))));
  $("library-form").addEventListener("submit", (event) => { event.preventDefault(); loadLibrary(); });
  $("library-subject").addEventListener("change", loadLibrary);
  $("library-grade").addEventListener("change", loadLibrary);
  $("sort").addEventListener("change", loadFiles);
  const drop = $("drop");
  for (const kind of ["dragenter", "dragover"]) {
    document.addEventListener(kind, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  document.addEventListener("dragleave", () => drop.classList.remove("over"));
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer?.files?.length && state.session && state.tab === "files") upload(event.dataTransfer.files);
  });
  $("prev").addEventListener("click", () => showPage(state.viewer.page - 1));
  $("next").addEventListener("click", () => showPage(state.viewer.page + 1));
  $("close").addEventListener("click", closeViewer);
  document.addEventListener("keydown", (event) => {
    if ($("viewer").hidden) return;
    if (event.key === "Escape") closeViewer();
    if (event.key === "ArrowRight" || event.key === "PageDown") showPage(state.viewer?.page + 1);
    if (event.key === "ArrowLeft" || event.key === "PageUp") showPage(state.viewer?.page - 1);
  });
}

async function main() {
  PartaI18n.translatePage(t, lang);
  wire();
  state.widget = PartaSignIn.startWidget(params);
  state.config = await (await fetch("/documents/config.json")).json();
  state.matrix = state.widget ? null : PartaSignIn.savedSession(SESSION_KEY);
  if (state.widget || state.matrix) return await start();
  $("login").hidden = false;
}

main();
