// The call page: inside a Matrix client as a widget (the Widget API gives an OpenID token),
// or standalone for phones (the page signs in to the homeserver and asks for the token).
// The SFU decides who may send what; this page only shows it and asks.
"use strict";

const TEXT = {
  ru: {
    sign_in_title: "Вход в звонок", sign_in_hint: "Войдите с именем пользователя и паролем Парты.",
    user_name: "Имя пользователя", password: "Пароль", sign_in: "Войти",
    lobby_title: "Проверьте микрофон и камеру", microphone: "Микрофон", camera: "Камера",
    join: "Войти в звонок", mic_on: "Микрофон", cam_on: "Камера", share_screen: "Показать экран",
    stop_share: "Остановить показ", raise_hand: "Поднять руку", lower_hand: "Опустить руку",
    leave: "Выйти", hands: "Поднятые руки", mute_all: "Выключить всем микрофоны",
    cameras_allowed: "Ученикам можно включать камеры", attendance: "Посещаемость",
    participants: "Участники", rejoin: "Вернуться в звонок", give_floor: "Дать слово",
    take_floor: "Забрать слово", allow_screen: "Разрешить показ экрана",
    forbid_screen: "Запретить показ экрана", remove: "Удалить из звонка", teacher: "учитель",
    has_floor: "говорит", hand_up: "поднял(а) руку", connecting: "Подключение…",
    connected: "В звонке", reconnecting: "Связь потеряна, подключаемся снова…",
    no_hands: "Рук пока нет", removed_title: "Вас удалили из звонка",
    removed_text: "Учитель удалил вас из этого звонка.", replaced_title: "Звонок открыт в другом окне",
    replaced_text: "Вы вошли в этот звонок с другого устройства или вкладки.",
    left_title: "Вы вышли из звонка", left_text: "Звонок продолжается без вас.",
    error_title: "Не удалось войти в звонок",
    name: "Имя", minutes: "Минут", first_joined: "Пришёл(ла)", wait_floor: "Микрофон включит учитель",
    error_bad_join: "Звонок не удалось открыть. Обновите страницу.",
    error_too_many_sockets: "С этим входом уже открыты три звонка. Закройте лишний или войдите снова.",
    error_server_not_allowed: "Ваш сервер не из этого региона и не из тех, с кем он связан, поэтому войти нельзя.",
    error_private_address: "Ваш сервер не удалось проверить: его адрес во внутренней сети. Сообщите администратору.",
    error_join_timeout: "Страница слишком долго входила в звонок, и сервер закрыл соединение. Обновите страницу.",
    error_join_too_large: "Сервер не принял запрос на вход: он слишком большой. Обновите страницу.",
    error_message_too_large: "Сервер закрыл звонок: страница отправила слишком большое сообщение. Обновите страницу.",
    error_invalid_token: "Сервер не подтвердил, кто вы. Войдите снова.",
    error_bad_token: "Сервер не подтвердил, кто вы. Войдите снова.",
    error_wrong_server: "Сервер не подтвердил, кто вы.",
    error_unreachable: "Ваш сервер сейчас не отвечает. Попробуйте позже.",
    error_not_a_member: "Вы не участник этого чата, поэтому не можете войти в его звонок.",
    error_unknown_room: "Такого чата нет.", error_removed: "Учитель удалил вас из этого звонка.",
    error_not_moderator: "Это может сделать только учитель.",
    error_not_in_call: "Этого человека уже нет в звонке.",
    error_cannot_remove_moderator: "Учителя нельзя удалить из звонка.",
    error_homeserver_unavailable: "Сервер сейчас не отвечает. Попробуйте через минуту.",
    error_bad_message: "Запрос не понят. Обновите страницу.",
    error_login: "Неверное имя пользователя или пароль.",
    post_attendance: "Отправить посещаемость в чат", attendance_posted: "Посещаемость отправлена в чат.",
    rejoined: "Переподключений",
    error_bot_not_in_room: "Бота Парты нет в этом чате: пригласите его, чтобы отправить посещаемость.",
    present: "Показать документ", present_title: "Показать документ всем",
    present_hint: "PDF, презентации и документы этого чата и ваши «Мои документы». Ваш файл сначала отправится в чат.",
    prev_page: "Назад", next_page: "Вперёд", stop_presenting: "Закончить показ", cancel: "Отмена",
    presenting: "{name} показывает «{file}»", mine_prefix: "Мои документы: ",
    no_documents: "Здесь пока нет документов для показа. Загрузите их на странице «Документы».",
    error_not_allowed_to_present: "Показывать документы может учитель или тот, кому он разрешил показ экрана.",
    error_not_presenter: "Листать может только тот, кто показывает.",
    error_nothing_presented: "Сейчас ничего не показывают.",
    error_document: "Документ не открылся: у вас нет доступа или его удалили.",
    error_codec_unsupported: "Ваш браузер не может показать это видео: его формат не поддерживается. Попробуйте другой браузер.",
    left_room_text: "Вы больше не участник этого чата, поэтому звонок для вас закончился.",
    mic_locked: "Ваш микрофон выключен: говорить можно, когда учитель даст вам слово. Чтобы попросить слово, поднимите руку.",
    mic_audience: "Вы зритель трансляции: вы видите и слышите выступающих. Вопросы можно задать в чате.",
    sound_only: "Только звук", video_again: "Включить видео",
    audio_only_poor_network: "Слабая связь: трансляция идёт только со звуком.",
    audio_only_chosen: "Видео выключено, чтобы сберечь трафик: трансляция идёт со звуком.",
    mic_locked_hand_up: "Ваш микрофон выключен. Вы подняли руку: микрофон включится, когда учитель даст вам слово.",
    no_room_title: "Какой звонок открыть?",
    no_room_text: "В адресе этой страницы нет звонка: не хватает room_id — кода комнаты Matrix, который начинается с «!» (…/call/?room_id=!…). Откройте звонок из чата в Element (звонок «Урок» или «Родительское собрание») или по ссылке «Урок» на вашей странице в Парте.",
    no_room_link: "Моя страница в Парте",
    media_both: "Работают микрофон и камера.",
    media_audio_only: "Камеры нет или доступ к ней запрещён: вы в звонке только со звуком, вас слышно, но не видно.",
    media_video_only: "Микрофона нет или доступ к нему запрещён: вас видно, но не слышно.",
    media_none: "Нет доступа ни к микрофону, ни к камере: вы будете только смотреть и слушать. Чтобы говорить, разрешите микрофон в браузере и обновите страницу.",
    mode_title: "Режим звонка", mode_lesson: "Урок: слово даёт учитель",
    mode_open: "Открытое собрание: говорят все",
    mode_note_lesson: "Урок: говорит учитель и те, кому он дал слово.",
    mode_note_lesson_moderator: "Урок: участники говорят, только когда вы дадите им слово.",
    mode_note_open: "Открытое собрание: говорить и включать камеру могут все.",
    mode_note_open_moderator: "Открытое собрание: говорить и включать камеру могут все. Вы можете выключить участнику микрофон или удалить его из звонка.",
    mute: "Выключить микрофон", unmute: "Включить микрофон", muted: "микрофон выключен учителем",
    mic_muted: "Учитель выключил вам микрофон. Включить его снова может только учитель: поднимите руку, чтобы попросить слово.",
    error_cannot_mute_moderator: "Учителю нельзя выключить микрофон.",
    error_only_moderator_switches_mode: "Режим звонка переключает только учитель.",
    error_broadcast_audience_listens: "Во время трансляции слушатели не говорят все сразу: учитель выводит на сцену по одному.",
  },
  en: {
    sign_in_title: "Join the call", sign_in_hint: "Sign in with your Parta user name and password.",
    user_name: "User name", password: "Password", sign_in: "Sign in",
    lobby_title: "Check your microphone and camera", microphone: "Microphone", camera: "Camera",
    join: "Join the call", mic_on: "Microphone", cam_on: "Camera", share_screen: "Share screen",
    stop_share: "Stop sharing", raise_hand: "Raise hand", lower_hand: "Lower hand",
    leave: "Leave", hands: "Raised hands", mute_all: "Mute everyone",
    cameras_allowed: "Pupils may turn their cameras on", attendance: "Attendance",
    participants: "Participants", rejoin: "Back to the call", give_floor: "Give the floor",
    take_floor: "Take the floor back", allow_screen: "Allow screen sharing",
    forbid_screen: "Forbid screen sharing", remove: "Remove from the call", teacher: "teacher",
    has_floor: "speaking", hand_up: "hand raised", connecting: "Connecting…",
    connected: "In the call", reconnecting: "Connection lost, reconnecting…",
    no_hands: "No hands yet", removed_title: "You were removed from the call",
    removed_text: "The teacher removed you from this call.", replaced_title: "The call is open elsewhere",
    replaced_text: "You joined this call from another device or tab.",
    left_title: "You left the call", left_text: "The call goes on without you.",
    error_title: "Could not join the call",
    name: "Name", minutes: "Minutes", first_joined: "Joined", wait_floor: "The teacher turns your microphone on",
    error_bad_join: "The call could not be opened. Reload the page.",
    error_too_many_sockets: "This sign-in already has three calls open. Close one or sign in again.",
    error_server_not_allowed: "Your server is not of this region nor of one it federates with, so you cannot join.",
    error_private_address: "Your server could not be checked: its address is on a private network. Tell the administrator.",
    error_join_timeout: "The page took too long to join the call, and the server closed the connection. Reload the page.",
    error_join_too_large: "The server refused the request to join: it is too large. Reload the page.",
    error_message_too_large: "The server closed the call: the page sent a message that is too large. Reload the page.",
    error_invalid_token: "The server could not confirm who you are. Sign in again.",
    error_bad_token: "The server could not confirm who you are. Sign in again.",
    error_wrong_server: "The server could not confirm who you are.",
    error_unreachable: "Your homeserver does not answer right now. Try again later.",
    error_not_a_member: "You are not in this chat, so you cannot join its call.",
    error_unknown_room: "There is no such chat.", error_removed: "The teacher removed you from this call.",
    error_not_moderator: "Only a teacher can do this.",
    error_not_in_call: "This person is no longer in the call.",
    error_cannot_remove_moderator: "A teacher cannot be removed from the call.",
    error_homeserver_unavailable: "The server does not answer right now. Try again in a minute.",
    error_bad_message: "The request was not understood. Reload the page.",
    error_login: "Wrong user name or password.",
    post_attendance: "Post attendance to the chat", attendance_posted: "The attendance was posted to the chat.",
    rejoined: "Times rejoined",
    error_bot_not_in_room: "Parta's bot is not in this chat: invite it to post the attendance.",
    present: "Present a document", present_title: "Present a document to everyone",
    present_hint: "PDFs, presentations and documents of this chat and your “My documents”. Your own file is sent to the chat first.",
    prev_page: "Previous", next_page: "Next", stop_presenting: "Stop presenting", cancel: "Cancel",
    presenting: "{name} presents “{file}”", mine_prefix: "My documents: ",
    no_documents: "No documents to present here yet. Upload them on the Documents page.",
    error_not_allowed_to_present: "A teacher, or someone the teacher lets share the screen, may present documents.",
    error_not_presenter: "Only the presenter turns the pages.",
    error_nothing_presented: "Nothing is being presented.",
    error_document: "The document did not open: you have no access to it, or it was deleted.",
    error_codec_unsupported: "Your browser cannot show this video: its format is not supported. Try another browser.",
    left_room_text: "You are no longer in this chat, so the call has ended for you.",
    mic_locked: "Your microphone is off: you may speak once the teacher gives you the floor. To ask for it, raise your hand.",
    mic_audience: "You are watching a broadcast: you see and hear the speakers. Ask your questions in the chat.",
    sound_only: "Sound only", video_again: "Turn video on",
    audio_only_poor_network: "Weak connection: the broadcast goes on with sound only.",
    audio_only_chosen: "Video is off to save data: the broadcast goes on with sound.",
    mic_locked_hand_up: "Your microphone is off. Your hand is up: the microphone turns on when the teacher gives you the floor.",
    no_room_title: "Which call?",
    no_room_text: "This page's address names no call: it lacks room_id, the Matrix room's ID that starts with “!” (…/call/?room_id=!…). Open the call from the chat in Element (the «Урок» or «Родительское собрание» call) or through the «Lesson» link on your page in Parta.",
    no_room_link: "My page in Parta",
    media_both: "Your microphone and camera work.",
    media_audio_only: "No camera, or access to it is denied: you are in the call with sound only, heard but not seen.",
    media_video_only: "No microphone, or access to it is denied: you are seen but not heard.",
    media_none: "No access to a microphone or a camera: you will only watch and listen. To speak, allow the microphone in the browser and reload the page.",
    mode_title: "Call mode", mode_lesson: "Lesson: the teacher gives the floor",
    mode_open: "Open meeting: everyone speaks",
    mode_note_lesson: "Lesson: the teacher speaks, and those the teacher gives the floor.",
    mode_note_lesson_moderator: "Lesson: participants speak only once you give them the floor.",
    mode_note_open: "Open meeting: everyone may speak and turn their camera on.",
    mode_note_open_moderator: "Open meeting: everyone may speak and turn their camera on. You can mute a participant or remove them from the call.",
    mute: "Mute", unmute: "Unmute", muted: "muted by the teacher",
    mic_muted: "The teacher muted your microphone. Only the teacher can turn it back on: raise your hand to ask for the floor.",
    error_cannot_mute_moderator: "A teacher cannot be muted.",
    error_only_moderator_switches_mode: "Only the teacher switches the call's mode.",
    error_broadcast_audience_listens: "During a broadcast the audience does not all speak at once: the teacher brings people on stage one by one.",
  },
};

const params = new URLSearchParams(location.search);
const lang = PartaI18n.language(params);
const t = PartaI18n.translator(TEXT, lang);
const { byId: $, element } = PartaDom;

const call = {
  roomId: params.get("room_id") || "",
  // Opened from a broadcast's widget: the SFU puts its speakers on the stage.
  broadcastId: /^[1-9][0-9]{0,8}$/.test(params.get("broadcast_id") || "")
    ? Number(params.get("broadcast_id"))
    : null,
  config: null,
  openid: null,
  widget: null, // {api, ready} inside a Matrix client
  standalone: null, // {homeserver, accessToken, userId} when signed in by this page
  socket: null,
  pc: null,
  you: null,
  state: null,
  local: { audio: null, video: null, screen: null },
  wantMic: true,
  wantCam: true,
  ended: false,
  retries: 0,
  levels: {},
};

function show(section) {
  for (const id of ["login", "lobby", "call", "ended", "no-room"]) $(id).hidden = id !== section;
}

// --- who are you: a widget in a Matrix client, or this page's own sign-in (signin.js) ------

const SESSION_KEY = "parta-call-session";

async function signIn(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  $("login-error").hidden = true;
  try {
    call.standalone = await PartaSignIn.signIn(call.config.homeserver_url, form.get("user"),
      form.get("password"), "Звонок Парты", SESSION_KEY);
    await lobby();
  } catch (error) {
    $("login-error").textContent = t("error_login");
    $("login-error").hidden = false;
  }
}

async function token() {
  return await PartaSignIn.openidToken(call.widget, call.config.homeserver_url, call.standalone);
}

// --- the lobby: devices ----------------------------------------------------------------

// Whatever the device has, each asked for on its own: a camera missing (a school desktop
// without a webcam) or refused must not cost the microphone, as one request for both
// would. Without either, the person still sees and hears the lesson. The page says in
// words which it is.
async function capture(constraints) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return null;
  try {
    return await navigator.mediaDevices.getUserMedia(constraints);
  } catch (error) {
    return null; // not there, or not allowed
  }
}

async function openMedia() {
  const mic = $("mic-select").value;
  const cam = $("camera-select").value;
  for (const kind of ["audio", "video"]) if (call.local[kind]) call.local[kind].stop();
  const sound = await capture({ audio: mic ? { deviceId: { exact: mic } } : true });
  const picture = await capture({
    video: cam ? { deviceId: { exact: cam }, width: 640, height: 480 } : { width: 640, height: 480 },
  });
  call.local.audio = sound ? sound.getAudioTracks()[0] || null : null;
  call.local.video = picture ? picture.getVideoTracks()[0] || null : null;
  $("preview").srcObject = picture;
  $("preview").hidden = !call.local.video;
  describeMedia();
}

// One line, in the lobby and in the call, on what this page sends.
function describeMedia() {
  const { audio, video } = call.local;
  const key = audio && video ? "media_both" : audio ? "media_audio_only" : video ? "media_video_only" : "media_none";
  for (const id of ["media-note", "call-media-note"]) {
    $(id).textContent = t(key);
    $(id).dataset.media = key;
    $(id).classList.toggle("warn", key !== "media_both");
  }
  $("call-media-note").hidden = key === "media_both";
}

async function lobby() {
  show("lobby");
  await openMedia();
  const devices = navigator.mediaDevices ? await navigator.mediaDevices.enumerateDevices() : [];
  for (const [kind, select] of [["audioinput", $("mic-select")], ["videoinput", $("camera-select")]]) {
    select.replaceChildren(...devices.filter((d) => d.kind === kind).map((d, i) =>
      element("option", { value: d.deviceId }, d.label || `${t(kind === "audioinput" ? "microphone" : "camera")} ${i + 1}`)));
  }
  $("mic-select").onchange = openMedia;
  $("camera-select").onchange = openMedia;
}

// --- the call --------------------------------------------------------------------------

// The room is in the address: nginx sends each call to the widget process its room hashes to.
function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/call/ws?room_id=${encodeURIComponent(call.roomId)}`;
}

function edgeUrl(url) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const base = url.startsWith("/") ? `${scheme}//${location.host}${url}` : url;
  return `${base}?room_id=${encodeURIComponent(call.roomId)}`;
}

async function join() {
  show("call");
  call.ended = false;
  setStatus("connecting");
  let openid;
  try {
    openid = await token();
  } catch (error) {
    return end("error", t("error_invalid_token"));
  }
  // A broadcast's origin may send this page to an edge to watch from (with a ticket, good
  // for a minute): it joins there once; whatever closes that socket, back to the origin.
  const edge = call.edge;
  call.edge = null;
  const socket = new WebSocket(edge ? edgeUrl(edge.url) : socketUrl());
  call.socket = socket;
  const joining = edge
    ? { type: "join", room_id: call.roomId, ticket: edge.ticket }
    : { type: "join", room_id: call.roomId, openid };
  if (!edge && call.broadcastId !== null) joining.broadcast_id = call.broadcastId;
  socket.onopen = () => socket.send(JSON.stringify(joining));
  socket.onmessage = (event) => onMessage(JSON.parse(event.data));
  socket.onclose = (event) => {
    if (call.socket !== socket || call.ended) return;
    closePeer();
    if (call.edge) return join(); // sent to an edge: go now
    // An edge's refusal of its ticket (too old, say) is no reason to give up: the origin
    // writes a new one. Its other closes (the broadcast over, the edge full) go back too.
    const final = event.code === 1009 || (event.code === 1008 && event.reason !== "bad_join");
    if (edge && !final) {
      setStatus("reconnecting");
      const wait = Math.min(15000, 500 * 2 ** call.retries++); // back to the origin
      return setTimeout(() => { if (!call.ended) join(); }, wait);
    }
    // Closed on purpose (RFC 6455: 1008 policy, 1009 too large): say why, do not retry.
    // The service's own reasons have words; a transport's reason (English) does not.
    if (event.code === 1008 || event.code === 1009) {
      const ours = `error_${event.reason}` in TEXT.ru;
      const fallback = event.code === 1009 ? "error_message_too_large" : "error_bad_join";
      return end("error", t(ours ? `error_${event.reason}` : fallback));
    }
    setStatus("reconnecting");
    const wait = Math.min(15000, 1000 * 2 ** call.retries++);
    setTimeout(() => { if (!call.ended) join(); }, wait);
  };
}

// A broadcast's viewer on an edge: sound only on a poor network (the edge decides from
// what this page's connection reports) or by choice, and the picture back on request.
function soundOnly(reason) {
  $("net-note").hidden = !reason;
  $("net-text").textContent = reason ? t(`audio_only_${reason}`) : "";
  $("sound-only").hidden = Boolean(reason) || !(me() && me().audience);
}

function send(message) {
  if (call.socket && call.socket.readyState === WebSocket.OPEN) call.socket.send(JSON.stringify(message));
}

async function onMessage(message) {
  switch (message.type) {
    case "offer": return await answerOffer(message);
    case "edge": call.edge = { url: message.url, ticket: message.ticket }; return;
    case "audio_only": return soundOnly(message.reason);
    case "video": return soundOnly(message.on ? null : "chosen");
    case "state": return render(message);
    case "attendance": return showAttendance(message.people);
    case "attendance_posted": return flash(t("attendance_posted"));
    case "removed": return end("removed", message.reason === "not_a_member" ? t("left_room_text") : undefined);
    case "replaced": return end("replaced");
    case "error":
      if (!call.state) return end("error", t(`error_${message.reason}`));
      return flash(t(`error_${message.reason}`));
  }
}

async function answerOffer(message) {
  call.you = message.you;
  closePeer();
  // TURN credentials come with each offer, short-lived and only to a verified page.
  const iceServers = [...(call.config.ice_servers || []), ...(message.ice_servers || [])];
  const pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
  call.pc = pc;
  pc.ontrack = () => render(call.state);
  await pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
  const transceivers = pc.getTransceivers();
  // The first three are what this page publishes: microphone, camera, screen.
  const published = [call.local.audio, call.local.video, call.local.screen];
  transceivers.forEach((transceiver, index) => {
    if (index < 3) {
      transceiver.direction = "sendonly";
      transceiver.sender.replaceTrack(published[index] || null);
    } else {
      transceiver.direction = "recvonly";
    }
  });
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  declareSending(); // before the answer: no slot is given to what this page does not send
  send({ type: "answer", sdp: answer.sdp });
  call.retries = 0;
  setStatus("connected");
}

// Tell the SFU which of the three streams carry something now: only those get a tile on
// other pages (an empty screen slot would be a black tile named after its owner).
function declareSending() {
  send({
    type: "sending",
    audio: Boolean(call.local.audio) && call.wantMic,
    camera: Boolean(call.local.video) && call.wantCam,
    screen: Boolean(call.local.screen),
  });
}

function closePeer() {
  if (call.pc) call.pc.close();
  call.pc = null;
}

function me() {
  return call.state && call.state.participants.find((p) => p.user_id === call.you);
}

// What this page sends follows what the SFU allows: a pupil's microphone is live only while
// they hold the floor. (The SFU forwards nothing it does not allow, whatever a page does.)
function applyPermissions() {
  const self = me();
  if (!self) return;
  if (call.local.audio) call.local.audio.enabled = self.audio && call.wantMic;
  if (call.local.video) call.local.video.enabled = self.camera && call.wantCam;
  $("mic").disabled = !self.audio || !call.local.audio;
  $("mic").title = self.audio ? "" : t("wait_floor");
  // On a phone there is no tooltip: why the microphone is locked, and what to do, in words.
  const locked = !self.audio && Boolean(call.local.audio);
  $("mic-note").hidden = !locked;
  const why = self.muted ? "mic_muted" : self.hand_raised ? "mic_locked_hand_up" : self.audience ? "mic_audience" : "mic_locked";
  $("mic-note").textContent = locked ? t(why) : "";
  describeMode(self);
  $("cam").disabled = !self.camera || !call.local.video;
  $("screen").hidden = !self.may_share_screen;
  $("hand").hidden = self.moderator || call.state.open_floor;
  if (!self.audience) $("net-note").hidden = true;
  $("sound-only").hidden = !self.audience || !$("net-note").hidden;
  $("hand").textContent = t(self.hand_raised ? "lower_hand" : "raise_hand");
  $("mic").classList.toggle("off", !(self.audio && call.wantMic));
  $("cam").classList.toggle("off", !(self.camera && call.wantCam));
  $("panel").hidden = !self.moderator;
}

// The call's mode, and what it means for this person, in one line above the call. A room
// nobody moderates (a family room) has no mode to speak of: everyone speaks there.
function describeMode(self) {
  const mode = call.state.mode;
  const note = $("mode-note");
  note.hidden = call.state.open_floor;
  note.dataset.mode = mode;
  note.textContent = t(`mode_note_${mode}${self.moderator ? "_moderator" : ""}`);
  $(mode === "open" ? "mode-open" : "mode-lesson").checked = true;
}

function streamsBySlot(state) {
  const video = {};
  const audio = [];
  if (!call.pc) return { video, audio };
  for (const transceiver of call.pc.getTransceivers()) {
    const shown = state.slots[transceiver.mid];
    if (!shown || !transceiver.receiver.track) continue;
    if (shown.source === "audio") audio.push({ mid: transceiver.mid, user: shown.user_id, track: transceiver.receiver.track });
    else video[`${shown.user_id}/${shown.source}`] = transceiver.receiver.track;
  }
  return { video, audio };
}

function render(state) {
  if (!state) return;
  call.state = state;
  applyPermissions();
  const { video, audio } = streamsBySlot(state);
  const grid = $("grid");
  const tiles = [];
  for (const person of state.participants) {
    for (const source of ["screen", "camera"]) {
      const local = person.user_id === call.you;
      const track = local ? (source === "camera" ? call.local.video : call.local.screen) : video[`${person.user_id}/${source}`];
      if (source === "screen" && !track) continue;
      tiles.push(tile(person, source, local && source === "camera" && !person.camera ? null : track, local));
    }
  }
  grid.replaceChildren(...tiles);
  grid.dataset.count = String(tiles.length);
  const sink = $("audio");
  sink.replaceChildren(...audio.map(({ mid, track }) => playerOf(mid, track)));
  renderPanel(state);
  renderPresentation(state);
}

// --- a document shown to everyone (the SFU keeps which one and its page) -----------------

const shown = { eventId: null, view: null, name: "", loading: null, documents: null };

async function documentsApi(path, options = {}) {
  if (!shown.documents) {
    const answer = await fetch("/documents/api/session", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ openid: await token() }),
    });
    if (!answer.ok) throw new Error(t("error_document"));
    shown.documents = (await answer.json()).token;
  }
  const headers = { Authorization: `Bearer ${shown.documents}` };
  if (options.json !== undefined) headers["Content-Type"] = "application/json";
  const body = options.json !== undefined ? JSON.stringify(options.json) : undefined;
  const answer = await fetch(`/documents/api${path}`, { ...options, headers, body });
  if (answer.status === 401) shown.documents = null;
  if (!answer.ok) throw new Error(t("error_document"));
  return await answer.json();
}

async function renderPresentation(state) {
  const presentation = state.presentation;
  const section = $("presentation");
  const mine = me();
  $("present").hidden = !(mine && (mine.moderator || mine.may_share_screen));
  if (!presentation) {
    section.hidden = true;
    if (shown.view) shown.view.close();
    shown.eventId = null;
    return;
  }
  section.hidden = false;
  const steering = mine && (mine.moderator || presentation.presenter === call.you);
  for (const id of ["present-prev", "present-next", "present-stop"]) $(id).hidden = !steering;
  const presenter = state.participants.find((p) => p.user_id === presentation.presenter);
  try {
    if (shown.eventId !== presentation.event_id) {
      shown.eventId = presentation.event_id;
      shown.view = shown.view || new PdfViewer($("present-stage"));
      shown.loading = (async () => {
        const file = await documentsApi(
          `/rooms/${encodeURIComponent(call.roomId)}/files/${encodeURIComponent(presentation.event_id)}`);
        if (!file.pdf_url) throw new Error(t("error_document"));
        shown.name = file.name;
        await shown.view.open(file.pdf_url);
      })();
    }
    await shown.loading;
    if (shown.eventId !== presentation.event_id) return; // another document meanwhile
    $("presentation-name").textContent = t("presenting", { name: presenter ? presenter.display_name : "", file: shown.name });
    await shown.view.show(presentation.page);
    $("present-page").textContent = `${shown.view.page} / ${shown.view.pages}`;
    $("present-page").dataset.page = String(shown.view.page);
    $("present-error").hidden = true;
  } catch (error) {
    $("present-error").textContent = t("error_document");
    $("present-error").hidden = false;
  }
}

// pdf.js is a module: loaded the first time a document is shown, not with every call.
class PdfViewer {
  constructor(stage) { this.stage = stage; this.inner = null; }
  async ready() {
    if (!this.inner) this.inner = new (await import("/static/pdf-view.js")).PdfView(this.stage);
    return this.inner;
  }
  async open(url) { return (await this.ready()).open(url); }
  async show(page) { return (await this.ready()).show(page); }
  get page() { return this.inner ? this.inner.page : 0; }
  get pages() { return this.inner ? this.inner.pages : 0; }
  close() { if (this.inner) this.inner.close(); }
}

async function choosePresentation() {
  const select = $("present-file");
  const error = $("present-dialog-error");
  error.hidden = true;
  select.replaceChildren();
  try {
    const rooms = await documentsApi("/rooms");
    const here = await documentsApi(`/rooms/${encodeURIComponent(call.roomId)}/files`);
    const mine = rooms.mine === call.roomId ? { files: [] } : await documentsApi(`/rooms/${encodeURIComponent(rooms.mine)}/files`);
    const showable = (file) => Boolean(file.pdf_url);
    for (const file of here.files.filter(showable)) {
      select.append(element("option", { value: `here:${file.event_id}` }, file.name));
    }
    for (const file of mine.files.filter(showable)) {
      select.append(element("option", { value: `mine:${rooms.mine}:${file.event_id}` }, t("mine_prefix") + file.name));
    }
    if (!select.options.length) { error.textContent = t("no_documents"); error.hidden = false; }
    else select.selectedIndex = 0;
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
  }
  const dialog = $("present-dialog");
  dialog.onclose = async () => {
    if (dialog.returnValue !== "present" || !select.value) return;
    let eventId = select.value.split(":").pop();
    if (select.value.startsWith("mine:")) {
      // Everyone must be able to read what is shown: the file goes into this chat first.
      const roomId = select.value.slice(5, select.value.lastIndexOf(":"));
      const sent = await documentsApi(
        `/rooms/${encodeURIComponent(roomId)}/files/${encodeURIComponent(eventId)}/share`,
        { method: "POST", json: { room_id: call.roomId } }).catch(() => null);
      if (!sent) return flash(t("error_document"));
      eventId = sent.event_id;
    }
    send({ type: "present", event_id: eventId });
  };
  dialog.showModal();
}

function turnPage(step) {
  const presentation = call.state && call.state.presentation;
  if (presentation) send({ type: "present_page", page: Math.max(1, presentation.page + step) });
}

// One <video> per track, kept across renders, so a picture never restarts on a state change.
const views = new Map();

function viewOf(track) {
  let view = views.get(track.id);
  if (!view) {
    view = element("video", { autoplay: "", playsinline: "" });
    view.muted = true;
    view.srcObject = new MediaStream([track]);
    views.set(track.id, view);
    track.addEventListener("ended", () => views.delete(track.id));
  }
  return view;
}

const players = new Map();

function playerOf(mid, track) {
  let player = players.get(mid);
  if (!player || player.srcObject.getTracks()[0] !== track) {
    player = element("audio", { autoplay: "", "data-mid": mid });
    player.srcObject = new MediaStream([track]);
    players.set(mid, player);
  }
  return player;
}

function tile(person, source, track, local) {
  const box = element("figure", { class: `tile ${source}`, "data-user": person.user_id, "data-source": source });
  if (track) {
    box.append(viewOf(track));
  } else {
    box.append(element("div", { class: "avatar" }, initials(person.display_name)));
  }
  const badges = [];
  if (person.moderator) badges.push(t("teacher"));
  if (person.has_floor) badges.push(t("has_floor"));
  if (person.muted) badges.push(t("muted"));
  if (person.hand_raised) badges.push("✋");
  box.append(element("figcaption", {}, person.display_name + (local ? " ●" : ""), badges.length ? element("small", {}, " · " + badges.join(" · ")) : ""));
  if (call.levels[person.user_id] > 0.02) box.classList.add("speaking");
  return box;
}

function initials(name) {
  return name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join("") || "?";
}

function renderPanel(state) {
  const self = me();
  if (!self || !self.moderator) return;
  const people = Object.fromEntries(state.participants.map((p) => [p.user_id, p]));
  $("hands").replaceChildren(...(state.hands.length ? state.hands.map((id) => element("li", {},
    people[id] ? people[id].display_name : id, " ",
    element("button", { onclick: () => send({ type: "grant", target: id }) }, t("give_floor")))) :
    [element("li", { class: "muted" }, t("no_hands"))]));
  $("cameras-allowed").checked = state.cameras_allowed;
  // In a lesson the teacher gives and takes the floor; in an open meeting everyone has it,
  // and the teacher mutes (a mute holds until the teacher lifts it).
  const voice = (p) => state.mode === "open"
    ? element("button", { class: p.muted ? "" : "secondary", "data-action": p.muted ? "unmute" : "mute",
      onclick: () => send({ type: p.muted ? "unmute" : "mute", target: p.user_id }) }, t(p.muted ? "unmute" : "mute"))
    : p.has_floor
      ? element("button", { class: "secondary", onclick: () => send({ type: "revoke", target: p.user_id }) }, t("take_floor"))
      : element("button", { onclick: () => send({ type: "grant", target: p.user_id }) }, t("give_floor"));
  $("people").replaceChildren(...state.participants.filter((p) => !p.moderator).map((p) => element("li", { "data-user": p.user_id },
    element("span", {}, p.display_name),
    voice(p),
    element("button", { class: "secondary", onclick: () => send({ type: "screen", target: p.user_id, allowed: !p.may_share_screen }) },
      t(p.may_share_screen ? "forbid_screen" : "allow_screen")),
    element("button", { class: "danger", onclick: () => send({ type: "remove", target: p.user_id }) }, t("remove")))));
}

function showAttendance(people) {
  const box = $("attendance-table");
  const rows = people.map((row) => element("tr", {},
    element("td", {}, row.display_name),
    element("td", {}, new Date(row.first_joined * 1000).toLocaleTimeString(lang)),
    element("td", {}, String(Math.round(row.seconds / 60))),
    element("td", {}, String(Math.max(0, (row.visits || 1) - 1)))));
  box.replaceChildren(element("table", {},
    element("thead", {}, element("tr", {}, element("th", {}, t("name")), element("th", {}, t("first_joined")),
      element("th", {}, t("minutes")), element("th", {}, t("rejoined")))),
    element("tbody", {}, ...rows)));
  box.hidden = false;
}

function setStatus(key) {
  $("status").textContent = t(key);
  $("status").dataset.state = key;
}

function flash(text) {
  setStatus("connected");
  $("status").textContent = text;
  setTimeout(() => { if (!call.ended) setStatus("connected"); }, 4000);
}

function end(kind, text) {
  call.ended = true;
  if (call.socket) call.socket.close();
  closePeer();
  show("ended");
  $("ended-title").textContent = t(`${kind}_title`);
  $("ended-text").textContent = text || t(`${kind}_text`);
  $("rejoin").hidden = kind === "removed";
  $("ended").dataset.kind = kind;
}

async function toggleScreen() {
  const transceiver = call.pc && call.pc.getTransceivers()[2];
  if (call.local.screen) {
    call.local.screen.stop();
    call.local.screen = null;
  } else {
    try {
      const stream = await navigator.mediaDevices.getDisplayMedia({ video: true });
      call.local.screen = stream.getVideoTracks()[0];
      call.local.screen.onended = () => {
        call.local.screen = null;
        if (transceiver) transceiver.sender.replaceTrack(null);
        declareSending();
        render(call.state);
      };
    } catch (error) {
      return;
    }
  }
  if (transceiver) await transceiver.sender.replaceTrack(call.local.screen);
  declareSending();
  $("screen").textContent = t(call.local.screen ? "stop_share" : "share_screen");
  render(call.state);
}

// The active speaker: audio levels of the slots, a few times a second.
async function pollLevels() {
  if (call.pc && call.state) {
    const stats = await call.pc.getStats();
    const levels = {};
    stats.forEach((report) => {
      if (report.type === "inbound-rtp" && report.kind === "audio" && report.mid !== undefined) {
        const shown = call.state.slots[report.mid];
        if (shown) levels[shown.user_id] = report.audioLevel || 0;
      }
    });
    call.levels = levels;
    for (const box of document.querySelectorAll(".tile")) box.classList.toggle("speaking", (levels[box.dataset.user] || 0) > 0.02);
  }
  setTimeout(pollLevels, 400);
}

async function start() {
  PartaI18n.translatePage(t, lang);
  call.widget = PartaSignIn.startWidget(params);
  call.config = await (await fetch("/call/config.json")).json();
  $("login-form").addEventListener("submit", signIn);
  $("join").addEventListener("click", join);
  $("rejoin").addEventListener("click", () => { call.retries = 0; join(); });
  $("leave").addEventListener("click", () => end("left"));
  $("mic").addEventListener("click", () => { call.wantMic = !call.wantMic; applyPermissions(); declareSending(); });
  $("cam").addEventListener("click", () => {
    call.wantCam = !call.wantCam;
    applyPermissions();
    declareSending();
    render(call.state);
  });
  $("screen").addEventListener("click", toggleScreen);
  $("hand").addEventListener("click", () => send({ type: me() && me().hand_raised ? "lower_hand" : "raise_hand" }));
  $("sound-only").addEventListener("click", () => send({ type: "video", on: false }));
  $("video-again").addEventListener("click", () => send({ type: "video", on: true }));
  $("mute-all").addEventListener("click", () => send({ type: "mute_all" }));
  for (const id of ["mode-lesson", "mode-open"]) {
    $(id).addEventListener("change", (event) => send({ type: "mode", mode: event.target.value }));
  }
  $("cameras-allowed").addEventListener("change", (event) => send({ type: "cameras", allowed: event.target.checked }));
  $("attendance").addEventListener("click", () => send({ type: "attendance" }));
  $("post-attendance").addEventListener("click", () => send({ type: "post_attendance" }));
  $("present").addEventListener("click", choosePresentation);
  $("present-prev").addEventListener("click", () => turnPage(-1));
  $("present-next").addEventListener("click", () => {
    if (!shown.view || shown.view.page < shown.view.pages) turnPage(1);
  });
  $("present-stop").addEventListener("click", () => send({ type: "stop_presenting" }));
  if (!/^![^\s/]{1,255}$/.test(call.roomId)) {
    // Opened by hand, or from a link cut short: say what is missing and where calls are.
    $("no-room-link").href = call.config.web_url;
    return show("no-room");
  }
  pollLevels();
  if (call.widget) return await lobby();
  call.standalone = PartaSignIn.savedSession(SESSION_KEY);
  if (call.standalone) return await lobby();
  show("login");
}

document.addEventListener("DOMContentLoaded", start);
