// `/jobs`: every job, newest first, 50 a page.
import { showJobs } from "./joblist.js";

const PAGE = 50;
const tbody = document.querySelector("#jobs-table tbody");
const note = document.getElementById("jobs-note");
const newer = document.getElementById("jobs-newer");
const older = document.getElementById("jobs-older");
const where = document.getElementById("jobs-page");
let offset = 0;

async function show() {
  const held = await showJobs(tbody, note, { limit: PAGE, offset });
  where.textContent = held ? `Jobs ${offset + 1}–${offset + held}` : "";
  newer.disabled = offset === 0;
  older.disabled = held < PAGE;
}

newer.addEventListener("click", () => {
  offset = Math.max(0, offset - PAGE);
  show();
});
older.addEventListener("click", () => {
  offset += PAGE;
  show();
});
show();
