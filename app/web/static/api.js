// The API as the pages call it: the header secret (asked once, kept in this tab's session
// storage), job tokens (kept per job), errors as the API words them, downloads.

const page = document.body.dataset;
export const root = page.root || "";
export const secretRequired = page.secretRequired === "true";
export const jobTokenRequired = page.jobTokenRequired === "true";

const HEADER = "x-reacher-secret";
const SECRET_KEY = "mxprobe:secret";
const JOBS_KEY = "mxprobe:jobs";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// ---- the header secret ----------------------------------------------------------------------

function storedSecret() {
  return sessionStorage.getItem(SECRET_KEY);
}

let asking = null;

/** Ask for the secret in the page's dialog; resolves to it, or null if the dialog is closed. */
export function askSecret(problem = "") {
  if (asking) return asking;
  const dialog = document.getElementById("secret-dialog");
  const input = document.getElementById("secret-input");
  const said = document.getElementById("secret-problem");
  said.textContent = problem;
  input.value = "";
  asking = new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        const given = input.value.trim();
        input.value = "";
        asking = null;
        if (given) sessionStorage.setItem(SECRET_KEY, given);
        resolve(given || null);
      },
      { once: true },
    );
  });
  dialog.showModal();
  input.focus();
  return asking;
}

// Asked as the page opens: without it the page can do nothing.
if (secretRequired && !storedSecret()) askSecret();

const change = document.getElementById("change-secret");
if (change) {
  change.addEventListener("click", async () => {
    if (await askSecret()) location.reload();
  });
}

// ---- calls -----------------------------------------------------------------------------------

async function errorOf(response) {
  try {
    const body = await response.json();
    if (body && typeof body.error === "string") return body.error;
  } catch {
    // not JSON: uvicorn's plain "Service Unavailable", a proxy's page
  }
  return `the service answered ${response.status} ${response.statusText}`.trim();
}

/**
 * `path` of the API, with the secret; the JSON answer (or the Response with `raw`).
 * A 401 asks for the secret and tries again; any other error is an ApiError with the
 * API's own message.
 */
export async function call(path, { method = "GET", body, headers = {}, raw = false } = {}) {
  if (secretRequired && !storedSecret()) await askSecret();
  for (;;) {
    const sent = new Headers(headers);
    const secret = storedSecret();
    if (secret) sent.set(HEADER, secret);
    let response;
    try {
      response = await fetch(root + path, { method, body, headers: sent, cache: "no-store" });
    } catch (error) {
      throw new ApiError(0, `the service did not answer (${error.message})`);
    }
    if (response.status === 401) {
      const problem = await errorOf(response);
      if (await askSecret(problem)) continue;
      throw new ApiError(401, problem);
    }
    if (!response.ok) throw new ApiError(response.status, await errorOf(response));
    return raw ? response : response.json();
  }
}

// ---- jobs and their tokens -------------------------------------------------------------------

/** Keep a new job's token for this tab: the API may accept only the token. */
export function rememberJob(id, token) {
  const jobs = myJobs().filter((job) => job.id !== id);
  jobs.unshift({ id, token });
  sessionStorage.setItem(JOBS_KEY, JSON.stringify(jobs.slice(0, 200)));
}

/** The jobs this tab submitted, newest first: [{id, token}]. */
export function myJobs() {
  try {
    const jobs = JSON.parse(sessionStorage.getItem(JOBS_KEY) || "[]");
    return Array.isArray(jobs) ? jobs : [];
  } catch {
    return [];
  }
}

/** How to name a job to the API: its token when this tab knows it, else as the page names it. */
export function apiRef(ref) {
  if (/^[0-9]+$/.test(ref)) {
    const known = myJobs().find((job) => String(job.id) === ref);
    if (known) return known.token;
  }
  return ref;
}

/** The page of a job: by its token when only tokens find jobs (the link then works anywhere). */
export function jobPage(id, token) {
  return `${root}/jobs/${encodeURIComponent(jobTokenRequired && token ? token : String(id))}`;
}

// ---- downloads -------------------------------------------------------------------------------

function filenameOf(disposition) {
  const match = /filename="?([^";]+)"?/i.exec(disposition || "");
  return match ? match[1] : null;
}

/**
 * Save the answer to `path` as a file. Without a secret the browser downloads it itself
 * (streamed to disk); with one, the request must carry the header, so the answer is fetched
 * and saved from memory (a Blob).
 */
export async function download(path, name) {
  const anchor = document.createElement("a");
  let url = root + path;
  if (storedSecret() || secretRequired) {
    const response = await call(path, { raw: true });
    const blob = await response.blob();
    name = filenameOf(response.headers.get("content-disposition")) || name;
    url = URL.createObjectURL(blob);
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }
  anchor.href = url;
  anchor.download = name;
  anchor.hidden = true;
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
}

// ---- formatting ------------------------------------------------------------------------------

const numbers = new Intl.NumberFormat();

export function count(n) {
  return numbers.format(n);
}

export function when(iso) {
  if (!iso) return "–";
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime()) ? iso : moment.toLocaleString();
}

export function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  if (seconds < 1) return "under a second";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  return `${h} h ${m % 60} min`;
}

export function percent(done, total) {
  if (!total) return 0;
  return Math.floor((100 * done) / total);
}

/** An element with text (never markup: addresses and replies come from strangers). */
export function el(tag, text = "", attributes = {}) {
  const node = document.createElement(tag);
  if (text !== "") node.textContent = text;
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

/** A table row's cells get their column's name (shown above each value on a phone, where a
 * row is a card) and explicit roles (kept when CSS changes how the table is laid out). */
export function labelled(tr, labels) {
  tr.setAttribute("role", "row");
  [...tr.children].forEach((cell, index) => {
    cell.dataset.label = labels[index];
    cell.setAttribute("role", cell.tagName === "TH" ? "rowheader" : "cell");
  });
  return tr;
}

export const VERDICTS = ["safe", "risky", "invalid", "unknown"];
