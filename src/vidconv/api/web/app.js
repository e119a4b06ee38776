// The vidconv page: log in or sign up, pick or drop a file, choose the format and its options
// (from GET /api/formats), upload with a progress bar, follow the conversion live, download,
// delete, and the list of your conversions. Plain DOM, no framework, no build step.

import * as api from "./api.js";

const $ = (id) => document.getElementById(id);

// How each option is shown; the ranges, defaults and descriptions come from the server.
const LABELS = {
  max_height: ["Maximum height", "pixels"],
  video_bitrate: ["Video bitrate", "kbit/s"],
  quality: ["Quality", "100 is best"],
  audio: ["Keep the audio"],
  start: ["Start at", "seconds"],
  duration: ["Length", "seconds"],
  preset: ["Speed preset"],
  audio_bitrate: ["Audio bitrate", "kbit/s"],
  channels: ["Audio channels"],
  sample_rate: ["Audio sample rate", "Hz"],
  thumbnail: ["Poster image"],
  thumbnail_at: ["Poster at", "seconds"],
  preview: ["Animated preview"],
  sprites: ["Scrubbing sprites"],
};
// Trim gets a group of its own; the rarely needed options wait behind "More options".
const TRIM = new Set(["start", "duration"]);
const MORE = new Set(["video_bitrate", "audio_bitrate", "channels", "sample_rate", "thumbnail",
  "thumbnail_at", "preview", "sprites"]);
const STATE_WORDS = {
  PENDING: "Waiting", STARTED: "Converting", SUCCESS: "Done", FAILURE: "Failed",
  REVOKED: "Cancelled",
};

const state = { formats: [], limit: 0, file: null, stopFollow: null, job: null };

function show(id, visible) {
  $(id).hidden = !visible;
}

function say(id, text) {
  $(id).textContent = text || "";
}

function announce(text) {
  say("announce", text);
}

function element(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("aria-") || key === "for") node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// -- signing in ---------------------------------------------------------------------------------

function showAuth(message) {
  show("auth", true);
  show("convert", false);
  show("tasks", false);
  show("who", false);
  show("logout", false);
  say("auth-error", message);
}

function showApp() {
  show("auth", false);
  show("convert", true);
  show("tasks", true);
  say("who", `Logged in as ${api.session.user}`);
  show("who", true);
  show("logout", true);
  $("convert-title").focus();
  refreshList();
}

function sessionEnded(error) {
  if (error instanceof api.ApiError && error.status === 401) {
    api.session.clear();
    if (state.stopFollow) state.stopFollow();
    showAuth(error.message);
    $("login-name").focus();
    return true;
  }
  return false;
}

async function onLogin(event) {
  event.preventDefault();
  const form = event.currentTarget;
  say("auth-error", "");
  const name = form.username.value.trim();
  if (!name || !form.password.value) {
    say("auth-error", "Please give your user name (or email) and your password.");
    return;
  }
  try {
    await api.login(name, form.password.value);
    form.reset();
    showApp();
  } catch (error) {
    say("auth-error", error.message);
  }
}

async function onSignup(event) {
  event.preventDefault();
  const form = event.currentTarget;
  say("auth-error", "");
  const values = Object.fromEntries(new FormData(form));
  if (!values.username.trim() || !values.email.trim() || !values.password1) {
    say("auth-error", "Please fill in a user name, an email and a password.");
    return;
  }
  if (values.password1 !== values.password2) {
    say("auth-error", "The two passwords are not the same.");
    return;
  }
  try {
    await api.signup(values.username.trim(), values.email.trim(), values.password1,
      values.password2);
    await api.login(values.username.trim(), values.password1);
    form.reset();
    showApp();
  } catch (error) {
    say("auth-error", error.message);
  }
}

// -- the form -----------------------------------------------------------------------------------

function describe(option) {
  // What the label does not say already: the default and the range.
  const parts = [];
  if (option.type !== "boolean") {
    const points = Object.entries(option.default_by_preset || {});
    const differ = new Set(points.map(([, value]) => value)).size > 1;
    const byPreset = differ ? ` (${points.map(([preset, value]) => `${preset} ${value}`)
      .join(", ")})` : "";
    const none = option.choices ? "none" : "as the input";
    parts.push(option.default === null ? `Default: ${none}.` :
      `Default: ${option.default}${byPreset}.`);
  }
  if (option.minimum !== null && option.maximum !== null) {
    parts.push(`${option.minimum} to ${option.maximum}.`);
  } else if (option.minimum !== null) {
    parts.push(`${option.exclusive_minimum ? "More than" : "At least"} ${option.minimum}.`);
  }
  if (option.excludes.length) {
    parts.push(`Not together with ${option.excludes.map((e) => (LABELS[e] || [e])[0]
      .toLowerCase()).join(", ")}.`);
  }
  if (!LABELS[option.name]) parts.unshift(option.description);
  return parts.join(" ");
}

function optionField(option) {
  const id = `opt-${option.name}`;
  const [label, unit] = LABELS[option.name] || [option.name];
  const hint = element("p", { class: "hint", id: `${id}-hint` }, describe(option));
  if (option.type === "boolean") {
    const box = element("input", {
      type: "checkbox", id, name: option.name, checked: option.default === true,
      "aria-describedby": hint.id,
    });
    return element("div", { class: "field check" }, box, element("label", { for: id }, label),
      hint);
  }
  if (option.choices) {
    // No default (an extra such as a poster): "none" first, and nothing is sent for it.
    const none = option.default === null ? [element("option", { value: "" }, "none")] : [];
    const select = element("select", { id, name: option.name, "aria-describedby": hint.id },
      ...none, ...option.choices.map((c) => element("option", {
        value: c, selected: c === option.default,
      }, c)));
    return element("div", { class: "field" }, element("label", { for: id }, label), select, hint);
  }
  const input = element("input", {
    type: "number", id, name: option.name, inputMode: option.type === "integer" ? "numeric"
      : "decimal", step: option.type === "integer" ? "1" : "any",
    placeholder: option.default === null ? "as the input" : String(option.default),
    "aria-describedby": hint.id,
  });
  if (option.minimum !== null) input.min = String(option.minimum);
  if (option.maximum !== null) input.max = String(option.maximum);
  const text = unit ? [label, " ", element("span", { class: "hint" }, `(${unit})`)] : [label];
  return element("div", { class: "field" }, element("label", { for: id }, ...text), input, hint);
}

function renderOptions() {
  const fmt = state.formats.find((f) => f.name === $("format").value);
  if (!fmt) return;
  say("format-about", fmt.description);
  const main = [];
  const trim = [];
  const more = [];
  for (const option of fmt.options) {
    const group = TRIM.has(option.name) ? trim : MORE.has(option.name) ? more : main;
    group.push(optionField(option));
  }
  const fields = $("option-fields");
  fields.replaceChildren(...main);
  if (trim.length) {
    fields.append(element("fieldset", { class: "wide" }, element("legend", {}, "Trim"),
      element("div", { class: "grid" }, ...trim)));
  }
  if (more.length) {
    fields.append(element("details", { class: "wide" }, element("summary", {}, "More options"),
      element("div", { class: "grid" }, ...more)));
  }
}

function collectOptions() {
  const fmt = state.formats.find((f) => f.name === $("format").value);
  const fields = { conversion_type: fmt.name };
  for (const option of fmt.options) {
    const input = $(`opt-${option.name}`);
    const [label] = LABELS[option.name] || [option.name];
    // Only what differs from the default is sent: the task keeps just what was asked for.
    if (option.type === "boolean") {
      if (input.checked !== (option.default === true)) fields[option.name] = String(input.checked);
    } else if (option.choices) {
      if (input.value && input.value !== option.default) fields[option.name] = input.value;
    } else if (input.validity.badInput) {
      throw new Error(`${label} must be a number.`);
    } else if (input.value.trim() !== "") {
      fields[option.name] = input.value.trim();
    }
  }
  return fields;
}

function chooseFile(file) {
  state.file = file || null;
  say("file-chosen", file ? `Chosen: ${file.name} (${api.bytes(file.size)})` : "");
  say("convert-error", "");
}

// -- one conversion -----------------------------------------------------------------------------

function resetJob(file, fmt) {
  if (state.stopFollow) state.stopFollow();
  state.stopFollow = null;
  state.job = { id: null, name: file.name, announced: 0, listed: null };
  say("job-title", `${file.name} → ${fmt}`);
  $("upload-bar").value = 0;
  $("convert-bar").value = 0;
  say("upload-text", "");
  say("convert-text", "");
  say("job-result", "");
  $("job-result").className = "";
  $("job-actions").replaceChildren();
  show("job", true);
}

function onUploadProgress(loaded, total) {
  const percent = Math.floor((100 * loaded) / total);
  $("upload-bar").value = percent;
  say("upload-text", `${percent} % (${api.bytes(loaded)} of ${api.bytes(total)})`);
}

function onProgress(data) {
  const percent = Math.floor(data.progress);
  $("convert-bar").value = percent;
  const parts = [`${percent} %`];
  if (data.fps) parts.push(`${Math.round(data.fps)} frames/s`);
  if (data.speed) parts.push(`${data.speed.toFixed(1)}× real time`);
  if (data.eta_seconds >= 1) parts.push(`about ${api.duration(data.eta_seconds)} left`);
  else if (data.eta_seconds !== null && percent < 100) parts.push("almost done");
  say("convert-text", parts.join(" · "));
  listState(data.task_id, `Converting, ${percent} %`);
  const step = Math.floor(percent / 25) * 25;
  if (state.job && step > state.job.announced && step < 100) {
    state.job.announced = step;
    announce(`Conversion ${step} % done.`);
  }
}

function jobButtons(task) {
  const buttons = [];
  if (task.state === "SUCCESS") {
    buttons.push(element("button", {
      type: "button", onclick: () => onDownload(task.task_id, task.result),
      "aria-label": `Download ${task.result}`,
    }, "Download"));
  }
  buttons.push(element("button", {
    type: "button", class: "quiet", onclick: () => onDelete(task.task_id, task.result),
    "aria-label": `Delete ${task.file_name || task.result || "this conversion"}`,
  }, "Delete"));
  return buttons;
}

// The list follows the stream too, between its refreshes (and a refresh that lands after an
// event keeps what the stream said last).
function listState(id, text) {
  if (state.job && state.job.id === id) state.job.listed = text;
  const cell = document.querySelector(`#task-list li[data-task="${CSS.escape(id)}"] .state`);
  if (cell) cell.textContent = text;
}

function onState(data) {
  if (!state.job || data.task_id !== state.job.id) return;
  if (data.state === "PENDING") listState(data.task_id, STATE_WORDS.PENDING);
  const done = data.state === "SUCCESS";
  if (data.state === "PENDING") say("convert-text", "Waiting for a free worker…");
  if (data.state === "STARTED" && !$("convert-text").textContent) say("convert-text", "Starting…");
  if (done) {
    $("convert-bar").value = 100;
    say("job-result", `Done: ${data.result} is ready.`);
    $("job-result").className = "ok";
    announce(`Done: ${data.result} is ready to download.`);
  } else if (data.state === "FAILURE") {
    say("job-result", `The conversion failed: ${data.error || data.result}`);
    $("job-result").className = "error";
    $("job-result").setAttribute("role", "alert");
  } else if (data.state === "REVOKED") {
    say("job-result", "The conversion was cancelled.");
  }
  if (["SUCCESS", "FAILURE", "REVOKED"].includes(data.state)) {
    $("job-actions").replaceChildren(...jobButtons({ ...data, file_name: state.job.name }));
    $("start").disabled = false;
    refreshList();
  }
}

async function onStart(event) {
  event.preventDefault();
  say("convert-error", "");
  const file = state.file;
  if (!file) {
    say("convert-error", "Choose a file to convert first.");
    $("file").focus();
    return;
  }
  if (file.size === 0) {
    say("convert-error", "That file is empty.");
    return;
  }
  if (state.limit && file.size > state.limit) {
    say("convert-error", `${file.name} is too large (${api.bytes(file.size)}): this server ` +
      `takes files up to ${api.bytes(state.limit)}.`);
    return;
  }
  let fields;
  try {
    fields = collectOptions();
  } catch (error) {
    say("convert-error", error.message);
    return;
  }
  $("start").disabled = true;
  resetJob(file, fields.conversion_type);
  announce(`Uploading ${file.name}.`);
  let id;
  try {
    id = await api.upload(file, fields, onUploadProgress, state.limit);
  } catch (error) {
    $("start").disabled = false;
    show("job", false);
    if (!sessionEnded(error)) say("convert-error", error.message);
    return;
  }
  state.job.id = id;
  $("upload-bar").value = 100;
  say("upload-text", "Uploaded");
  say("convert-text", "Waiting for a free worker…");
  announce("Uploaded. Converting.");
  refreshList();
  state.stopFollow = api.follow(id, {
    progress: onProgress,
    state: onState,
    error: (message) => say("convert-error", message),
  });
}

// -- downloads, deletes and the list ------------------------------------------------------------

async function onDownload(id, name) {
  say("convert-error", "");
  say("tasks-error", "");
  try {
    const saved = await api.download(id, name);
    announce(`Downloading ${saved}.`);
  } catch (error) {
    if (!sessionEnded(error)) say("tasks-error", error.message);
  }
}

async function onDelete(id, name) {
  say("tasks-error", "");
  try {
    await api.remove(id);
  } catch (error) {
    if (!sessionEnded(error)) say("tasks-error", error.message);
    return;
  }
  if (state.job && state.job.id === id) {
    if (state.stopFollow) state.stopFollow();
    show("job", false);
    $("start").disabled = false;
  }
  announce(`Deleted ${name || "the conversion"}.`);
  await refreshList();
  $("tasks-title").focus();
}

function stateWords(task) {
  const live = state.job && state.job.id === task.task_id ? state.job.listed : null;
  if (live && (task.state === "PENDING" || task.state === "STARTED")) return live;
  if (task.state === "STARTED") return `Converting, ${Math.floor(task.progress)} %`;
  if (task.state === "FAILURE") return `Failed: ${task.error || task.result}`;
  return STATE_WORDS[task.state] || task.state;
}

function taskItem(task) {
  const name = task.file_name || task.task_id;
  const item = element("li", { class: "task" },
    element("span", { class: "name" }, name),
    element("span", { class: "format" }, `→ ${task.conversion_type}`),
    element("span", { class: `state state-${task.state}` }, stateWords(task)),
    element("span", { class: "actions" }, ...jobButtons(task)));
  item.dataset.task = task.task_id;
  return item;
}

async function refreshList() {
  say("tasks-error", "");
  try {
    const summaries = await api.tasks();
    const details = await Promise.all(summaries.map((t) => api.task(t.task_id)));
    $("task-list").replaceChildren(...details.map(taskItem));
    show("tasks-empty", details.length === 0);
  } catch (error) {
    if (!sessionEnded(error)) say("tasks-error", error.message);
  }
}

// -- start --------------------------------------------------------------------------------------

function wireDrop() {
  const zone = $("drop");
  const stop = (event) => event.preventDefault();
  // A file dropped next to the zone must not make the browser leave the page for it.
  window.addEventListener("dragover", stop);
  window.addEventListener("drop", stop);
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const [file] = event.dataTransfer.files;
    if (file) {
      $("file").files = event.dataTransfer.files;
      chooseFile(file);
    }
  });
}

async function main() {
  $("login-form").addEventListener("submit", onLogin);
  $("signup-form").addEventListener("submit", onSignup);
  $("logout").addEventListener("click", () => {
    if (state.stopFollow) state.stopFollow();
    api.session.clear();
    show("job", false);
    showAuth("You have logged out.");
    $("login-name").focus();
  });
  $("file").addEventListener("change", (event) => chooseFile(event.target.files[0]));
  $("format").addEventListener("change", renderOptions);
  $("convert-form").addEventListener("submit", onStart);
  $("refresh").addEventListener("click", refreshList);
  wireDrop();
  try {
    const listed = await api.formats();
    state.formats = listed.formats;
    state.limit = listed.max_upload_bytes;
  } catch (error) {
    say("loading", `The page could not load the list of formats: ${error.message}`);
    return;
  }
  $("format").replaceChildren(...state.formats.map((f) => element("option", { value: f.name },
    `${f.name}${f.audio_only ? " (audio only)" : ""}`)));
  say("drop-hint", `Pick a file, or drop one here (up to ${api.bytes(state.limit)}).`);
  renderOptions();
  show("loading", false);
  if (api.session.token) showApp();
  else showAuth("");
}

main();
