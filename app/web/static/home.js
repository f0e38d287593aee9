// `/`: a list (a file, or pasted text) and its settings → POST /v0/bulk → the job's page.
import { call, jobPage, rememberJob } from "./api.js";
import { showJobs } from "./joblist.js";

const form = document.getElementById("submit-form");
const file = document.getElementById("file");
const drop = document.getElementById("drop");
const chosen = document.getElementById("file-chosen");
const pasted = document.getElementById("addresses");
const problem = document.getElementById("form-problem");
const submit = document.getElementById("submit");

function showChosen() {
  const picked = file.files[0];
  chosen.textContent = picked ? `Chosen: ${picked.name} (${picked.size.toLocaleString()} bytes)` : "";
  drop.classList.toggle("has-file", Boolean(picked));
}

file.addEventListener("change", showChosen);
for (const kind of ["dragenter", "dragover"]) {
  drop.addEventListener(kind, (event) => {
    event.preventDefault();
    drop.classList.add("dragging");
  });
}
for (const kind of ["dragleave", "drop"]) {
  drop.addEventListener(kind, () => drop.classList.remove("dragging"));
}
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  if (event.dataTransfer && event.dataTransfer.files.length) {
    file.files = event.dataTransfer.files;
    showChosen();
  }
});

function fail(message, field) {
  problem.textContent = message;
  if (field) {
    field.setAttribute("aria-invalid", "true");
    field.focus();
  }
}

/** The settings filled in, as the API names them; throws a message for bad ports. */
function settings() {
  const chosen = {};
  for (const name of ["from_email", "hello_name", "proxy"]) {
    const value = form.elements[name].value.trim();
    if (value) chosen[name] = value;
  }
  const ports = form.elements.smtp_ports.value.trim();
  if (ports) {
    const list = ports.split(",").map((port) => port.trim());
    if (!list.every((port) => /^[0-9]{1,5}$/.test(port) && +port >= 1 && +port <= 65535)) {
      throw new Error("SMTP ports are numbers from 1 to 65535, separated by commas: 25,587");
    }
    chosen.smtp_ports = list.map(Number);
  }
  return chosen;
}

function request(picked, text, chosen) {
  if (picked) {
    const body = new FormData();
    body.append("file", picked);
    for (const [name, value] of Object.entries(chosen)) {
      body.append(name, Array.isArray(value) ? value.join(",") : value);
    }
    return { method: "POST", body };
  }
  // The service's own list reader: one address per line, or CSV text with an email column.
  return {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ input_type: "csv", input: text, ...chosen }),
  };
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  problem.textContent = "";
  for (const field of form.querySelectorAll("[aria-invalid]")) field.removeAttribute("aria-invalid");
  const picked = file.files[0];
  const text = pasted.value.trim();
  if (!picked && !text) return fail("Choose a file or paste some addresses.", file);
  if (picked && text) return fail("Choose a file or paste addresses, not both.", pasted);
  let chosen;
  try {
    chosen = settings();
  } catch (error) {
    form.querySelector("details").open = true;
    return fail(error.message, form.elements.smtp_ports);
  }
  submit.disabled = true;
  submit.textContent = "Sending…";
  try {
    const created = await call("/v0/bulk", request(picked, text, chosen));
    rememberJob(created.job_id, created.job_token);
    location.assign(jobPage(created.job_id, created.job_token));
  } catch (error) {
    fail(`Not submitted: ${error.message}`);
    submit.disabled = false;
    submit.textContent = "Verify";
  }
});

showJobs(document.querySelector("#jobs-table tbody"), document.getElementById("jobs-note"), {
  limit: 10,
});
