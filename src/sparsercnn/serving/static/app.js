// The page at /: sends one image to POST /v1/stages and draws the learned proposals (stage 0)
// or one stage's detections (stage 1..S) over it. Boxes are xyxy pixels of the original image.
// The canvas carries data-drawn-boxes (boxes drawn now) and data-stage, for tests.
"use strict";

const PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
  "#bfef45", "#fabed4", "#469990", "#dcbeff", "#9a6324", "#800000", "#aaffc3", "#808000"];
const PROPOSAL_COLOUR = "rgba(255, 255, 255, 0.85)";
const MAX_CANVAS_SIDE = 960;

// request: the number of the latest upload; an answer to an earlier one is dropped.
const state = { model: null, view: null, image: null, request: 0 };
const canvas = document.getElementById("canvas");
const scoreSlider = document.getElementById("score-slider");
const stageSlider = document.getElementById("stage-slider");
const statusLine = document.getElementById("status");

function setStatus(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
  statusLine.dataset.error = isError ? "1" : "";
}

function colourOf(categoryId) {
  const classes = state.model ? state.model.classes : [];
  const index = classes.findIndex((c) => c.id === categoryId);
  return PALETTE[(index < 0 ? 0 : index) % PALETTE.length];
}

// The JSON body of an answer; an error answer (4xx/5xx, or not JSON: a proxy's page) throws an
// Error with the status and the server's message.
async function readAnswer(response) {
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  if (!response.ok || body === null) {
    const message = body && body.error ? body.error : text.trim().slice(0, 200) || "no message";
    const status = [response.status, response.statusText].filter(Boolean).join(" ");
    throw new Error(`${status}: ${message}`);
  }
  return body;
}

// Where the model runs, e.g. "fp32 on cuda:0 (torch)"; with --onnx, full-stage detections run
// the ONNX file elsewhere than the stage view this page draws: both are named.
function engines(m) {
  const run = (e) => `${e.precision} on ${e.device} (${e.engine})`;
  const full = run(m);
  const staged = m.stage_limited ? run(m.stage_limited) : full;
  return staged === full ? full : `stage view ${staged}, full-stage detections ${full}`;
}

async function loadModel() {
  state.model = await readAnswer(await fetch("/v1/model"));
  const m = state.model;
  document.getElementById("model-info").textContent =
    `${m.name}: ${m.classes.length} classes (${m.classes.map((c) => c.name).join(", ")}), ` +
    `${m.num_proposals} proposals, ${m.num_stages} stages, ${engines(m)}, ` +
    `sparsercnn ${m.version}`;
  stageSlider.max = String(m.num_stages);
  stageSlider.value = String(m.num_stages);
  updateLabels();
}

function updateLabels() {
  document.getElementById("score-value").textContent = Number(scoreSlider.value).toFixed(2);
  const stage = Number(stageSlider.value);
  const total = state.model ? state.model.num_stages : "?";
  document.getElementById("stage-value").textContent =
    stage === 0 ? `stage 0 of ${total}: learned proposals` : `stage ${stage} of ${total}`;
}

async function detect(file) {
  const request = ++state.request;
  // The previous image's boxes go at once: they must never stand for this file's.
  state.view = null;
  state.image = null;
  draw();
  setStatus(`running the model on ${file.name}…`);
  const form = new FormData();
  form.append("images", file, file.name);
  let body;
  try {
    body = await readAnswer(await fetch("/v1/stages", { method: "POST", body: form }));
  } catch (error) {
    if (request === state.request) {
      setStatus(`${file.name}: ${error.message}`, true);
    }
    return;
  }
  // The server reads formats a browser may not show (TIFF in Chromium): then the boxes are
  // drawn on a blank canvas of the image's size.
  let image = new Image();
  const url = URL.createObjectURL(file);
  image.src = url;
  try {
    await image.decode();
  } catch {
    image = null;
  }
  URL.revokeObjectURL(url); // a decoded image stays drawable
  if (request !== state.request) {
    return; // another file was chosen meanwhile: its answer is the one to show
  }
  state.image = image;
  state.view = body;
  const shown = image ? "" : `; this browser cannot display ${file.name}, boxes on a blank canvas`;
  setStatus(`${body.name}: ${body.width}x${body.height}, all stages in ` +
    `${body.inference_ms.toFixed(0)} ms${shown}`);
  draw();
}

function boxesToDraw() {
  const stage = Number(stageSlider.value);
  if (stage === 0) {
    return state.view.proposals.map((xyxy, slot) => ({ xyxy, label: null, slot }));
  }
  const threshold = Number(scoreSlider.value);
  return state.view.stages[stage - 1]
    .filter((d) => d.score >= threshold)
    .map((d) => ({ xyxy: d.bbox.xyxy, label: d }));
}

function draw() {
  updateLabels();
  const context = canvas.getContext("2d");
  const list = document.getElementById("detection-list");
  list.replaceChildren();
  if (!state.view) {
    context.clearRect(0, 0, canvas.width, canvas.height);
    canvas.dataset.drawnBoxes = "0";
    canvas.dataset.stage = "";
    return;
  }
  const view = state.view;
  const scale = Math.min(1, MAX_CANVAS_SIDE / Math.max(view.width, view.height));
  canvas.width = Math.round(view.width * scale);
  canvas.height = Math.round(view.height * scale);
  if (state.image) {
    context.drawImage(state.image, 0, 0, canvas.width, canvas.height);
  } else {
    context.fillStyle = "#444";
    context.fillRect(0, 0, canvas.width, canvas.height);
  }
  const boxes = boxesToDraw();
  context.font = "13px system-ui, sans-serif";
  for (const box of boxes) {
    const [x1, y1, x2, y2] = box.xyxy.map((v) => v * scale);
    const colour = box.label ? colourOf(box.label.category_id) : PROPOSAL_COLOUR;
    context.lineWidth = box.label ? 2 : 1;
    context.strokeStyle = colour;
    context.strokeRect(x1, y1, x2 - x1, y2 - y1);
    if (box.label) {
      const text = `${box.label.category_name} ${box.label.score.toFixed(2)}`;
      const width = context.measureText(text).width + 6;
      const top = y1 >= 16 ? y1 - 16 : y1;
      context.fillStyle = colour;
      context.fillRect(x1, top, width, 16);
      context.fillStyle = "#fff";
      context.fillText(text, x1 + 3, top + 12);
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = colour;
      item.append(swatch, text);
      list.append(item);
    }
  }
  canvas.dataset.drawnBoxes = String(boxes.length);
  canvas.dataset.stage = stageSlider.value;
}

function chooseFile(files) {
  if (files && files.length > 0) {
    detect(files[0]).catch((error) => setStatus(`failed: ${error.message || error}`, true));
  }
}

const dropZone = document.getElementById("drop-zone");
dropZone.addEventListener("dragover", (event) => {
  event.preventDefault();
  dropZone.classList.add("dragging");
});
dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dragging"));
dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  dropZone.classList.remove("dragging");
  chooseFile(event.dataTransfer.files);
});
document.getElementById("file-input").addEventListener("change", (e) => chooseFile(e.target.files));
scoreSlider.addEventListener("input", draw);
stageSlider.addEventListener("input", draw);
loadModel().catch((error) => setStatus(`cannot read /v1/model: ${error.message}`, true));
