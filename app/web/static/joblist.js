// The table of jobs (the home page's recent ones, and the jobs page).
import {
  VERDICTS,
  apiRef,
  call,
  count,
  el,
  jobPage,
  jobTokenRequired,
  labelled,
  myJobs,
  percent,
  when,
} from "./api.js";

const COLUMNS = ["Job", "Created", "Status", "Progress", "Safe", "Risky", "Invalid", "Unknown"];

function row(status, token) {
  const tr = el("tr");
  tr.dataset.jobId = String(status.job_id);
  const name = el("th", "", { scope: "row" });
  name.append(el("a", `#${status.job_id}`, { href: jobPage(status.job_id, token) }));
  tr.append(name, el("td", when(status.created_at)));
  const state = el("td");
  state.append(el("span", status.job_status, { class: `badge ${status.job_status}` }));
  tr.append(state);
  const done = percent(status.total_processed, status.total_records);
  tr.append(
    el("td", `${count(status.total_processed)} / ${count(status.total_records)} (${done} %)`),
  );
  for (const verdict of VERDICTS) {
    tr.append(el("td", count(status.summary[`total_${verdict}`]), { class: "num" }));
  }
  return labelled(tr, COLUMNS);
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
  if (!rows.length) {
    const empty = el("td", "No jobs yet.", { colspan: "8" });
    const tr = el("tr", "", { role: "row" });
    empty.setAttribute("role", "cell");
    tr.append(empty);
    tbody.replaceChildren(tr);
  }
}

/** A page of jobs, newest first, as `GET /v0/bulk/{id}` answers each: [{status, token}]. With
 * MXPROBE_REQUIRE_JOB_TOKEN the API lists none (each tenant sees only its own): the jobs
 * this tab submitted are shown instead. */
async function pageOf({ limit, offset }) {
  if (!jobTokenRequired) {
    const { jobs } = await call(`/v0/bulk?limit=${limit}&offset=${offset}`);
    return jobs.map((status) => ({ status }));
  }
  const page = [];
  for (const job of myJobs().slice(offset, offset + limit)) {
    try {
      const status = await call(`/v0/bulk/${encodeURIComponent(apiRef(String(job.id)))}`);
      page.push({ status, token: job.token });
    } catch {
      // gone (pruned after MXPROBE_RESULT_RETENTION_DAYS): not listed
    }
  }
  return page;
}

const REFRESH_MS = 3000;
let refresh = null;

/**
 * Fill `tbody` with a page of jobs; returns how many the page held. While one of them runs,
 * the page is shown again every few seconds.
 */
export async function showJobs(tbody, note, { limit, offset = 0 }) {
  clearTimeout(refresh);
  let page;
  try {
    page = await pageOf({ limit, offset });
  } catch (error) {
    note.textContent = `Could not list the jobs: ${error.message}`;
    return 0;
  }
  note.textContent = jobTokenRequired
    ? "This service lists no jobs (MXPROBE_REQUIRE_JOB_TOKEN): these are the jobs submitted " +
      "from this tab."
    : "";
  fill(tbody, page.map(({ status, token }) => row(status, token)));
  if (page.some(({ status }) => status.job_status === "running")) {
    refresh = setTimeout(() => showJobs(tbody, note, { limit, offset }), REFRESH_MS);
  }
  return page.length;
}
