// The page talks to the same API as everyone else: /models, /encode, /decode, /swap.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { models: [], model: null, files: { z1: null, z2: null }, names: { z1: "", z2: "" }, codes: null,
                selected: "z1", grid: { z1: [], z2: [] }, decodeBusy: false, decodePending: false,
                examples: [] };

// What the page is doing, for people (aria-busy) and for tests, which wait on it instead of on time.
function setStatus(name, value) { document.body.dataset[name] = value; }

const FACTOR_WORDS = {
  digit: { factor: "digit", rest: "colour and handwriting" },
  colour: { factor: "colour", rest: "digit and handwriting" },
};
const PROVIDERS = { CPUExecutionProvider: "runs on the CPU", CUDAExecutionProvider: "runs on the GPU" };

function headers(extra = {}) {
  const key = $("api-key").value.trim();
  return key ? { ...extra, "X-API-Key": key } : extra;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers || {}) });
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(detail);
  }
  return response;
}

function withModel(path) {
  const sep = path.includes("?") ? "&" : "?";
  return `${path}${sep}model=${encodeURIComponent(state.model.name)}`;
}

async function loadModels() {
  try {
    const body = await (await api("/models")).json();
    state.models = body.models;
    const select = $("model");
    select.innerHTML = "";
    for (const m of body.models) {
      const option = document.createElement("option");
      option.value = m.name;
      option.textContent = `${m.name} (z2: ${m.specified_factors.join(", ")})`;
      select.appendChild(option);
    }
    select.value = body.models.some((m) => m.name === body.default_model) ? body.default_model : body.models[0]?.name;
    showError("");
    selectModel(select.value);
  } catch (err) {
    showError(err.message);
  }
}

function selectModel(name) {
  state.model = state.models.find((m) => m.name === name);
  if (!state.model) return;
  const m = state.model;
  const ev = m.evaluation || {};
  const figures = ev.specified_accuracy ? ` · the result shows the second image's ${m.specified_factors[0]} in ` +
    `${(100 * ev.specified_accuracy.value).toFixed(1)} % of test pairs` : "";
  const words = FACTOR_WORDS[m.specified_factors[0]] ||
    { factor: m.specified_factors.join(", "), rest: "everything else" };
  $("model-info").textContent = `${m.description} · images of ${m.input_shape.slice(1).join("x")} pixels · ` +
    `${PROVIDERS[m.provider] || m.provider}${figures}`;
  document.querySelectorAll(".factor").forEach((el) => { el.textContent = `its ${words.factor}`; });
  document.querySelectorAll(".factor-short").forEach((el) => { el.textContent = words.factor; });
  document.querySelectorAll(".rest").forEach((el) => { el.textContent = words.rest; });
  renderExamples();
  buildSliders();
  clearResult();
  if (state.files.z1 && state.files.z2) runSwap();
}

// Each example is fetched once (with the API key header: a plain <img src> could not send it) and
// kept as a blob; picking it reuses that blob. data-examples says when all of them are in.
async function renderExamples() {
  const box = $("examples");
  box.innerHTML = "";
  const model = state.model;
  setStatus("examples", "loading");
  const loaded = await Promise.all((model.examples || []).map(async (ex) => {
    const label = Object.entries(ex.factors).map(([k, v]) => `${k} ${v}`).join(", ");
    const blob = await (await api(ex.url)).blob();
    return { blob, label, name: ex.url.split("/").pop() };
  })).catch((err) => { showError(err.message); return null; });
  if (!loaded || state.model !== model) return;  // failed, or another model was picked meanwhile
  state.examples = loaded;
  for (const ex of loaded) {
    const button = document.createElement("button");
    button.type = "button";
    button.title = `example: ${ex.label}`;
    const img = document.createElement("img");
    img.src = URL.createObjectURL(ex.blob);
    img.alt = `example: ${ex.label}`;
    button.appendChild(img);
    button.addEventListener("click", () => setSlot(state.selected, ex.blob, ex.name));
    box.appendChild(button);
  }
  setStatus("examples", "ready");
}

function selectSlot(slot) {
  state.selected = slot;
  for (const s of ["z1", "z2"]) $(`slot-${s}`).classList.toggle("selected", s === slot);
}

function setSlot(slot, blob, name) {
  state.files[slot] = blob;
  state.names[slot] = name || blob.name || `${slot}.png`;
  const img = $(`img-${slot}`);
  img.src = URL.createObjectURL(blob);
  img.hidden = false;
  selectSlot(slot === "z1" ? "z2" : "z1");
  if (state.files.z1 && state.files.z2) runSwap();
}

// The user's own file names go to the API, so its errors name the file the user picked.
async function runSwap() {
  const form = new FormData();
  form.append("z1_image", state.files.z1, state.names.z1);
  form.append("z2_image", state.files.z2, state.names.z2);
  setStatus("swap", "running");
  try {
    const body = await (await api(withModel("/swap?size=256"), {
      method: "POST", body: form, headers: { Accept: "application/json" },
    })).json();
    state.codes = { z1: body.z1[0], z2: body.z2[0] };
    showImage($("img-swap"), body.images[0]);
    resetSliders();
    $("sliders").hidden = !state.model.latent_directions?.z1;
    showError("");
    setStatus("swap", "done");
  } catch (err) {
    clearResult();  // never leave an earlier swap on screen beside an error about this one
    showError(err.message);
    setStatus("swap", "failed");
  }
}

function clearResult() {
  state.codes = null;
  $("img-swap").hidden = true;
  $("img-swap").removeAttribute("src");
  $("download").hidden = true;
  $("sliders").hidden = true;
}

function showImage(img, base64) {
  img.src = `data:image/png;base64,${base64}`;
  img.hidden = false;
  const download = $("download");
  download.href = img.src;
  download.hidden = false;
}

function buildSliders() {
  for (const code of ["z1", "z2"]) {
    const box = $(`sliders-${code}`);
    box.innerHTML = "";
    const axes = state.model.latent_directions?.[code];
    if (!axes) continue;
    axes.directions.forEach((_, i) => {
      const row = document.createElement("label");
      row.className = "slider";
      const what = code === "z1" ? "other factors" : "specified factor";
      row.innerHTML = `<span>direction ${i + 1}</span><input type="range" min="-3" max="3" step="0.1" value="0" ` +
        `data-code="${code}" data-axis="${i}" aria-label="${what}, direction ${i + 1}"><output>0</output>`;
      row.querySelector("input").addEventListener("input", (e) => {
        row.querySelector("output").textContent = e.target.value;
        redraw();
      });
      box.appendChild(row);
    });
  }
}

function resetSliders() {
  document.querySelectorAll("#sliders input[type=range]").forEach((s) => {
    s.value = "0";
    s.parentElement.querySelector("output").textContent = "0";
  });
}

function movedCodes() {
  const moved = { z1: [...state.codes.z1], z2: [...state.codes.z2] };
  document.querySelectorAll("#sliders input[type=range]").forEach((s) => {
    const { code, axis } = s.dataset;
    const axes = state.model.latent_directions[code];
    const step = Number(s.value) * axes.std[axis];
    axes.directions[axis].forEach((d, j) => { moved[code][j] += step * d; });
  });
  return moved;
}

// One /decode in flight at a time; the latest slider position wins.
async function redraw() {
  if (!state.codes) return;
  if (state.decodeBusy) { state.decodePending = true; return; }
  state.decodeBusy = true;
  try {
    const body = await (await api(withModel("/decode?size=256"), {
      method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(movedCodes()),
    })).json();
    showImage($("img-swap"), body.images[0]);
    showError("");
  } catch (err) {
    showError(err.message);
  } finally {
    state.decodeBusy = false;
    if (state.decodePending) { state.decodePending = false; redraw(); }
  }
}

async function encodeAll(blobs) {
  const form = new FormData();
  blobs.forEach((b, i) => form.append("image", b, b.name || `image-${i + 1}.png`));
  return (await api(withModel("/encode"), { method: "POST", body: form })).json();
}

async function buildGrid() {
  const { z1, z2 } = state.grid;
  if (!z1.length || !z2.length) { showError("pick at least one z1 image and one z2 image"); return; }
  try {
    const codes = await encodeAll([...z1, ...z2]);
    const rows = { z1: [], z2: [] };
    for (let i = 0; i < z1.length; i++) {
      for (let j = 0; j < z2.length; j++) {
        rows.z1.push(codes.z1[i]);
        rows.z2.push(codes.z2[z1.length + j]);
      }
    }
    const body = await (await api(withModel("/decode?size=128"), {
      method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(rows),
    })).json();
    const grid = $("grid");
    grid.innerHTML = "";
    grid.style.gridTemplateColumns = `repeat(${z2.length + 1}, minmax(0, 96px))`;
    const cell = (src, head) => {
      const img = document.createElement("img");
      img.src = src;
      if (head) img.className = "head";
      grid.appendChild(img);
    };
    grid.appendChild(document.createElement("span"));
    z2.forEach((b) => cell(URL.createObjectURL(b), true));
    z1.forEach((b, i) => {
      cell(URL.createObjectURL(b), true);
      for (let j = 0; j < z2.length; j++) cell(`data:image/png;base64,${body.images[i * z2.length + j]}`);
    });
    showError("");
  } catch (err) {
    showError(err.message);
  }
}

async function exampleBlobs() {
  return state.examples.map((ex) => ex.blob);
}

function wire() {
  $("model").addEventListener("change", (e) => selectModel(e.target.value));
  const saved = localStorage.getItem("twocode-api-key");
  if (saved) $("api-key").value = saved;
  // A key is applied once: the input fires "change" again when it loses focus (a click on an example
  // right after typing the key), and reloading then re-rendered the examples under the pointer.
  let appliedKey = $("api-key").value.trim();
  $("api-key").addEventListener("change", (e) => {
    const key = e.target.value.trim();
    if (key === appliedKey) return;
    appliedKey = key;
    localStorage.setItem("twocode-api-key", key);
    loadModels();
  });
  for (const slot of ["z1", "z2"]) {
    const box = $(`slot-${slot}`);
    box.addEventListener("click", () => selectSlot(slot));
    box.addEventListener("dragover", (e) => { e.preventDefault(); box.classList.add("drag"); });
    box.addEventListener("dragleave", () => box.classList.remove("drag"));
    box.addEventListener("drop", (e) => {
      e.preventDefault();
      box.classList.remove("drag");
      if (e.dataTransfer.files[0]) setSlot(slot, e.dataTransfer.files[0], e.dataTransfer.files[0].name);
    });
    box.querySelector("input[type=file]").addEventListener("change", (e) => {
      if (e.target.files[0]) setSlot(slot, e.target.files[0], e.target.files[0].name);
    });
  }
  $("reset-sliders").addEventListener("click", () => { resetSliders(); redraw(); });
  document.querySelectorAll(".tab").forEach((tab) => tab.addEventListener("click", () => {
    document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t === tab));
    $("swap-mode").hidden = tab.dataset.mode !== "swap";
    $("grid-mode").hidden = tab.dataset.mode !== "grid";
  }));
  $("grid-z1").addEventListener("change", (e) => { state.grid.z1 = [...e.target.files]; });
  $("grid-z2").addEventListener("change", (e) => { state.grid.z2 = [...e.target.files]; });
  $("grid-examples").addEventListener("click", async () => {
    try {
      const blobs = await exampleBlobs();
      state.grid = { z1: blobs, z2: [...blobs].reverse() };
      buildGrid();
    } catch (err) { showError(err.message); }
  });
  $("grid-build").addEventListener("click", buildGrid);
}

wire();
loadModels();
