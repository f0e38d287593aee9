// `/jobs/{ref}`: one job's progress (polled), rate and time left, summary chart, results
// (a page at a time, filtered and searched here), downloads and cancel.
import {
  ApiError,
  VERDICTS,
  apiRef,
  call,
  count,
  download,
  duration,
  el,
  jobTokenRequired,
  labelled,
  percent,
  when,
} from "./api.js";

const POLL_MS = 1000;
// A cancelled job's rows already being verified land over the next seconds: its page polls on
// until this many polls in a row found no new row, and shows each one that lands.
const SETTLE_POLLS = 3;
const PAGE = 100;
const RATE_WINDOW_MS = 20_000;
const COLUMNS = ["Row", "Address", "Verdict", "Reply", "Notes"];

const ref = document.body.dataset.ref;
const path = `/v0/bulk/${encodeURIComponent(apiRef(ref))}`;
const $ = (id) => document.getElementById(id);

let status = null;
let samples = [];
let lastAnnounced = -1;
let offset = 0;
let rows = [];
let resultsFor = null; // total_processed when the table was last loaded
let quietPolls = 0;

// ---- progress --------------------------------------------------------------------------------

/** Addresses per second: over the job's whole run once it is finished, else over the last
 * polls (this browser's clock, so a server's clock that differs does not matter). */
function rateOf(job) {
  if (job.finished_at) {
    const seconds = (Date.parse(job.finished_at) - Date.parse(job.created_at)) / 1000;
    return seconds > 0 ? job.total_processed / seconds : null;
  }
  if (job.job_status !== "running") return null;
  const now = performance.now();
  samples.push([now, job.total_processed]);
  while (samples.length > 2 && now - samples[0][0] > RATE_WINDOW_MS) samples.shift();
  const [since, then] = samples[0];
  const seconds = (now - since) / 1000;
  return seconds >= 2 ? (job.total_processed - then) / seconds : null;
}

function showProgress(job) {
  const done = percent(job.total_processed, job.total_records);
  const text = `${count(job.total_processed)} of ${count(job.total_records)} verified (${done} %)`;
  $("progress").value = done;
  $("progress").setAttribute("aria-valuetext", text);
  $("progress-text").textContent = text;
  // Screen readers hear every 10 % and the end, not every poll.
  const step = job.job_status === "running" ? Math.floor(done / 10) : 100 + job.job_status.length;
  if (step !== lastAnnounced) {
    lastAnnounced = step;
    $("progress-announce").textContent =
      job.job_status === "running" ? text : `Job ${job.job_status}: ${text}`;
  }
  const rate = rateOf(job);
  $("rate").textContent = rate === null ? (job.job_status === "running" ? "measuring…" : "–")
    : `${rate.toFixed(rate < 10 ? 1 : 0)} addresses/s`;
  const left = job.total_records - job.total_processed;
  if (job.job_status !== "running") $("eta").textContent = job.job_status === "complete" ? "done" : "–";
  else if (rate) $("eta").textContent = left / rate < 1 ? "a moment" : `about ${duration(left / rate)}`;
  else $("eta").textContent = rate === 0 ? "waiting…" : "measuring…";
  $("created").textContent = when(job.created_at);
  $("finished").textContent = when(job.finished_at);
  $("import-error").hidden = !job.error;
  $("import-error").textContent = job.error ? `Reading the list stopped: ${job.error}` : "";
}

function showChart(job) {
  const verified = job.total_processed;
  for (const verdict of VERDICTS) {
    const n = job.summary[`total_${verdict}`];
    const share = verified ? (100 * n) / verified : 0;
    $(`count-${verdict}`).textContent = count(n);
    $(`share-${verdict}`).textContent = `${Math.round(share)} %`;
    document.querySelector(`#chart li[data-verdict="${verdict}"] .fill`).style.width = `${share}%`;
    document.querySelector(`#stack .${verdict}`).style.width = `${share}%`;
  }
  $("chart-caption").textContent =
    job.job_status === "running"
      ? `Of the ${count(verified)} addresses verified so far.`
      : `Of the ${count(verified)} addresses verified.`;
}

function show(job) {
  status = job;
  document.title = `Job #${job.job_id} · mxprobe`;
  $("job-name").textContent = `#${job.job_id}`;
  $("job-status").textContent = job.job_status;
  $("job-status").className = `badge ${job.job_status}`;
  showProgress(job);
  showChart(job);
  const running = job.job_status === "running";
  $("cancel").hidden = !running;
  for (const id of ["download-csv", "download-json"]) $(id).disabled = running;
  if (running && !$("action-note").textContent) {
    $("action-note").textContent = "The downloads open when the job is complete.";
  } else if (!running && $("action-note").textContent.startsWith("The downloads open")) {
    $("action-note").textContent = "";
  }
  if (running) {
    $("results-note").textContent = "The results can be read here when the job is complete.";
  } else if (resultsFor !== job.total_processed) {
    resultsFor = job.total_processed;
    loadResults();
  }
}

async function poll() {
  const before = status && status.total_processed;
  try {
    show(await call(path));
    $("job-problem").textContent = "";
  } catch (error) {
    $("job-problem").textContent = problemOf(error);
    if (error instanceof ApiError && [400, 401, 404].includes(error.status)) return;
    setTimeout(poll, 5 * POLL_MS); // the service is restarting, or the network is down
    return;
  }
  quietPolls = status.total_processed === before ? quietPolls + 1 : 0;
  const settling = status.job_status === "cancelled" && quietPolls < SETTLE_POLLS;
  if (status.job_status === "running" || settling) setTimeout(poll, POLL_MS);
}

function problemOf(error) {
  if (jobTokenRequired && error instanceof ApiError && error.status === 404 && /^[0-9]+$/.test(ref)) {
    return `${error.message}. This service finds jobs only by their token: open the link ` +
      "the job's page had when it was submitted.";
  }
  return error.message;
}

// ---- results ---------------------------------------------------------------------------------

function replyOf(result) {
  const probe = result.debug && result.debug.probe;
  if (probe && probe.code) return `${probe.code} ${probe.message || ""}`.trim();
  return "";
}

function notesOf(result) {
  const notes = [];
  const { syntax = {}, mx = {}, smtp = {}, misc = {} } = result;
  if (syntax.is_valid_syntax === false) notes.push("not an address");
  if (syntax.suggestion) notes.push(`did you mean ${syntax.suggestion}?`);
  if (mx.error) notes.push(mx.error.message);
  else if (syntax.is_valid_syntax && mx.accepts_mail === false) notes.push("no mail server");
  if (smtp.error) notes.push(smtp.error.message);
  if (smtp.is_catch_all) notes.push("catch-all");
  if (smtp.has_full_inbox) notes.push("inbox full");
  if (smtp.is_disabled) notes.push("disabled");
  if (misc.is_disposable) notes.push("disposable");
  if (misc.is_role_account) notes.push("role account");
  return notes.join("; ");
}

function resultRow(result, index) {
  const tr = el("tr");
  tr.dataset.verdict = result.is_reachable;
  // Rows are numbered when every row is there (a cancelled job's unverified rows are not).
  const number = status.job_status === "complete" ? count(offset + index + 1) : "–";
  tr.append(el("td", number, { class: "num" }));
  tr.append(el("td", result.input, { class: "address" }));
  const verdict = el("td");
  verdict.append(el("span", result.is_reachable, { class: `verdict ${result.is_reachable}` }));
  tr.append(verdict, el("td", replyOf(result)), el("td", notesOf(result)));
  return labelled(tr, COLUMNS);
}

function showRows() {
  const verdict = $("verdict-filter").value;
  const words = $("search").value.trim().toLowerCase();
  const shown = [];
  rows.forEach((result, index) => {
    if (verdict && result.is_reachable !== verdict) return;
    if (words) {
      const text = `${result.input} ${replyOf(result)} ${notesOf(result)}`.toLowerCase();
      if (!text.includes(words)) return;
    }
    shown.push(resultRow(result, index));
  });
  $("results").tBodies[0].replaceChildren(...shown);
  const pages = Math.max(1, Math.ceil(status.total_records / PAGE));
  const page = Math.floor(offset / PAGE) + 1;
  $("results-page").textContent = `Page ${count(page)} of ${count(pages)}`;
  $("results-prev").disabled = offset === 0;
  $("results-next").disabled = page >= pages;
  $("results-note").textContent =
    shown.length === rows.length
      ? `${count(rows.length)} results on this page.`
      : `${count(shown.length)} of the ${count(rows.length)} results on this page match.`;
}

async function loadResults() {
  try {
    const body = await call(`${path}/download?format=json&limit=${PAGE}&offset=${offset}`);
    rows = body.results;
    showRows();
  } catch (error) {
    $("results-note").textContent = `Could not read the results: ${error.message}`;
  }
}

$("verdict-filter").addEventListener("change", showRows);
$("search").addEventListener("input", showRows);
$("results-prev").addEventListener("click", () => {
  offset = Math.max(0, offset - PAGE);
  loadResults();
});
$("results-next").addEventListener("click", () => {
  offset += PAGE;
  loadResults();
});

// ---- actions ---------------------------------------------------------------------------------

async function save(format) {
  const note = $("action-note");
  note.textContent = `Preparing the ${format.toUpperCase()} download…`;
  try {
    await download(`${path}/download?format=${format}`, `bulk-${status.job_id}.${format}`);
    note.textContent = `Downloaded bulk-${status.job_id}.${format}.`;
  } catch (error) {
    note.textContent = `The download failed: ${error.message}`;
  }
}

$("download-csv").addEventListener("click", () => save("csv"));
$("download-json").addEventListener("click", () => save("json"));
$("cancel").addEventListener("click", async () => {
  const question = `Cancel job #${status.job_id}? Addresses not verified yet will not be; ` +
    "the results so far stay.";
  if (!window.confirm(question)) return;
  try {
    show(await call(path, { method: "DELETE" }));
    $("action-note").textContent = "The job is cancelled.";
  } catch (error) {
    $("action-note").textContent = `Not cancelled: ${error.message}`;
  }
});

poll();
