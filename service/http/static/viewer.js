// FSD web viewer: POST the chosen DICOM files to /v1/detect?preview=true and draw each slice
// with its boxes and labels on a canvas; below it, each detection with its three most likely
// lesion types and their probabilities given a lesion. Server text is only ever set with
// textContent.
"use strict";

// colour per lesion type id 1..8 (same palette as fsd.inference.overlay)
const TYPE_COLOURS = ["#ff5050", "#ffaa3c", "#f0e646", "#5adc5a", "#46c8ff", "#7878ff", "#dc64ff", "#ff78c8"];
const MAX_SIDE = 512;

const statusLine = document.getElementById("status");
const resultsBox = document.getElementById("results");

function setStatus(text, isError) {
  statusLine.textContent = text;
  statusLine.className = isError ? "error" : "";
}

function colourOf(detection) {
  const id = detection.type_id || 1;
  return TYPE_COLOURS[(id - 1) % TYPE_COLOURS.length];
}

// the `count` most likely types of a detection as [name, P(type | lesion)], most likely first
function topTypes(detection, count) {
  return Object.entries(detection.type_scores || {}).sort((a, b) => b[1] - a[1]).slice(0, count);
}

function typeName(name) {
  return name.replaceAll("_", " ");
}

function detectionItem(detection) {
  const item = document.createElement("li");
  const summary = document.createElement("span");
  summary.className = "summary";
  summary.textContent = `${typeName(detection.type)} ${detection.score.toFixed(2)}, ${detection.long_diameter_mm.toFixed(1)} mm`;
  item.appendChild(summary);
  if (detection.type_id) {  // a typed model (a binary one has a single "lesion" type)
    const types = document.createElement("span");
    types.className = "types";
    const shown = topTypes(detection, 3).map(([name, probability]) => `${typeName(name)} ${probability.toFixed(2)}`);
    types.textContent = `type given a lesion: ${shown.join(", ")}`;
    item.append(document.createElement("br"), types);
  }
  return item;
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("the slice preview could not be decoded"));
    image.src = url;
  });
}

async function drawResult(result) {
  const image = await loadImage(result.preview_png);
  const scale = Math.max(1, Math.floor(MAX_SIDE / Math.max(image.width, image.height)));
  const canvas = document.createElement("canvas");
  canvas.width = image.width * scale;
  canvas.height = image.height * scale;
  canvas.className = "slice-canvas";
  canvas.dataset.sop = result.sop_instance_uid || "";
  canvas.dataset.frame = String(result.frame);
  canvas.dataset.scale = String(scale);
  const context = canvas.getContext("2d");
  context.imageSmoothingEnabled = false;
  context.drawImage(image, 0, 0, canvas.width, canvas.height);
  context.lineWidth = 2;
  context.font = "12px sans-serif";
  for (const detection of result.detections) {
    const [x1, y1, x2, y2] = detection.box_px.map((value) => value * scale);
    context.strokeStyle = colourOf(detection);
    context.fillStyle = colourOf(detection);
    context.strokeRect(x1, y1, x2 - x1, y2 - y1);
    context.fillText(`${typeName(detection.type)} ${detection.score.toFixed(2)}`, x1, Math.max(y1 - 3, 10));
  }
  canvas.dataset.boxes = String(result.detections.length);

  const figure = document.createElement("figure");
  figure.className = "slice";
  const caption = document.createElement("figcaption");
  caption.textContent = `${result.source}, frame ${result.frame}: ${result.detections.length} detection(s)`;
  const list = document.createElement("ul");
  for (const detection of result.detections) list.appendChild(detectionItem(detection));
  figure.append(canvas, caption, list);
  resultsBox.appendChild(figure);
}

async function detect(event) {
  event.preventDefault();
  const files = document.getElementById("files").files;
  if (!files.length) {
    setStatus("Choose one or more DICOM files first.", true);
    return;
  }
  const body = new FormData();
  for (const file of files) body.append("files", file, file.name);
  const key = document.getElementById("api-key").value.trim();
  const minScore = document.getElementById("min-score").value || "0";
  const headers = key ? { "X-API-Key": key } : {};
  document.body.dataset.state = "busy";
  resultsBox.replaceChildren();
  setStatus(`Sending ${files.length} file(s)...`, false);
  try {
    const response = await fetch(`/v1/detect?preview=true&min_score=${encodeURIComponent(minScore)}`, {
      method: "POST", headers, body,
    });
    const answer = await response.json();
    if (!response.ok) {
      const error = answer.error || { code: String(response.status), message: response.statusText };
      setStatus(`Error ${response.status} (${error.code}): ${error.message}`, true);
      document.body.dataset.state = "error";
      return;
    }
    for (const result of answer.results) await drawResult(result);
    const count = answer.results.reduce((sum, result) => sum + result.detections.length, 0);
    setStatus(`${answer.model.name} ${answer.model.version}: ${count} detection(s) on ${answer.results.length} slice(s) in ${Math.round(answer.timing_ms.total)} ms.`, false);
    document.body.dataset.state = "done";
  } catch (error) {
    setStatus(`Request failed: ${error.message}`, true);
    document.body.dataset.state = "error";
  }
}

document.getElementById("upload-form").addEventListener("submit", detect);
