// Labelling page: every text is set with textContent (never innerHTML), the server is the source of truth.
"use strict";
const $ = (id) => document.getElementById(id);
let state = null;
let busy = false;

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function render(s) {
  state = s;
  $("annotator").textContent = s.annotator;
  $("progress").textContent = `${s.done} of ${s.total}`;
  $("bar").max = s.total;
  $("bar").value = s.done;
  document.body.dataset.done = String(s.done);
  $("undo").disabled = $("undo2").disabled = !s.can_undo;
  const pair = s.pair;
  $("task").hidden = !pair;
  $("finished").hidden = !!pair;
  if (!pair) return;
  document.body.dataset.index = String(pair.index);
  $("sentence").textContent = pair.sentence;
  $("review").textContent = pair.review_id;
  $("photoid").textContent = pair.photo_id;
  if (pair.photo_url) {
    $("photo").hidden = false;
    $("nophoto").hidden = true;
    if ($("photo").getAttribute("src") !== pair.photo_url) $("photo").src = pair.photo_url;
  } else {
    $("photo").hidden = true;
    $("photo").removeAttribute("src");
    $("nophoto").hidden = false;
    $("nophoto").textContent = `photo ${pair.photo_id} not available`;
  }
}

async function call(method, url, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  const data = await response.json();
  if (!response.ok) {
    if (data.state) render(data.state);
    throw new Error(data.error || `HTTP ${response.status}`);
  }
  return data;
}

async function act(method, url, body, message) {
  if (busy) return;
  busy = true;
  try {
    render(await call(method, url, body));
    setStatus(message, false);
  } catch (e) {
    setStatus(`not saved: ${e.message}`, true);
  } finally {
    busy = false;
  }
}

function label(value) {
  if (!state || !state.pair) return;
  const { review_id, sentence, photo_id } = state.pair;
  act("POST", "/api/label", { review_id, sentence, photo_id, label: value }, `saved: ${value}`);
}

function undo() {
  if (state && state.can_undo) act("POST", "/api/undo", {}, "undone");
}

$("yes").addEventListener("click", () => label("yes"));
$("no").addEventListener("click", () => label("no"));
$("skip").addEventListener("click", () => label("skip"));
$("undo").addEventListener("click", undo);
$("undo2").addEventListener("click", undo);
document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  const key = event.key.toLowerCase();
  const actions = { y: () => label("yes"), n: () => label("no"), s: () => label("skip"), u: undo, backspace: undo };
  if (key in actions) {
    event.preventDefault();
    actions[key]();
  }
});
act("GET", "/api/state", undefined, "");
