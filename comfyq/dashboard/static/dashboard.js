// The comfyq dashboard: one snapshot, then a live stream of snapshots; every value is set as text, never as HTML.
"use strict";

const ACTIVE = ["pending", "queued", "running"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "class") node.className = value;
    else if (name.startsWith("data-")) node.setAttribute(name, value);
    else node[name] = value;
  }
  for (const child of children) if (child !== null && child !== undefined) {
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function badge(text, kind) { return el("span", {class: `badge ${kind || text}`}, text); }

function bar(fraction) {
  const pct = Math.round((fraction || 0) * 100);
  return el("div", {class: "bar", title: `${pct}%`, "data-fraction": String(fraction || 0)},
            el("span", {style: `width: ${pct}%`}));
}

function gibibytes(bytes) { return bytes == null ? "?" : `${(bytes / 2 ** 30).toFixed(1)} GiB`; }

function short(id) { return id ? id.slice(0, 8) : ""; }

function fill(tbody, rows, empty, columns) {
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", {class: "empty", colSpan: columns}, empty))]));
}

let actsOnFleet = false;

function instanceActions(inst) {
  if (!actsOnFleet) return null;
  const held = inst.intake_held_by !== null;
  return el("div", {class: "actions"},
    el("button", {class: held ? "open-intake" : "close-intake", "data-instance": inst.name,
                  onclick: () => act(inst.name, held ? "open" : "close")}, held ? "Open intake" : "Close intake"),
    el("button", {class: "drain", "data-instance": inst.name, title: "finish the running job, then stop the worker",
                  onclick: () => { if (confirm(`Drain the worker of ${inst.name}?`)) act(inst.name, "drain"); }},
       "Drain worker"));
}

function instanceCard(inst) {
  const health = inst.state === "healthy" ? "ok" : inst.worker_online ? "warn" : "bad";
  const run = inst.running;
  let running = el("b", {}, "idle");
  if (run && run.hidden) running = el("b", {}, "busy");
  else if (run) running = el("div", {class: "running", "data-job": run.job_id},
                              el("code", {}, short(run.job_id)), " ", run.node || "", bar(run.fraction));
  const last = inst.last_error;
  const intake = inst.intake_held_by ? `intake closed by ${inst.intake_held_by}` : `intake ${inst.intake || "?"}`;
  return el("div", {class: "card", "data-instance": inst.name, "data-intake": inst.intake || "",
                    "data-held": inst.intake_held_by || ""},
    el("h3", {}, inst.name, badge(inst.state || "unknown", health),
       badge(intake, inst.intake === "open" && !inst.intake_held_by ? "open" : "closed")),
    el("div", {class: "facts"},
      "VRAM free", el("b", {}, gibibytes(inst.vram_free)),
      "own queue", el("b", {}, `${inst.queue} (${inst.queue_depth})`),
      "last hour", el("b", {}, `${inst.done_last_hour} done, ${inst.failed_last_hour} failed`),
      "running", running,
      "last error", last ? el("span", {class: "error", title: last.at || ""}, last.message) : el("b", {}, "none")),
    instanceActions(inst));
}

function jobRow(job) {
  const shown = job.thumbnails.length
    ? el("span", {}, ...job.thumbnails.map((src) => el("img", {class: "thumb", src, alt: "output", loading: "lazy"})))
    : job.error ? el("span", {class: "error"}, job.error) : "";
  const action = ACTIVE.includes(job.status)
    ? el("button", {class: "cancel", "data-job": job.id, onclick: () => cancelJob(job.id)}, "Cancel") : "";
  return el("tr", {"data-job": job.id, "data-status": job.status},
    el("td", {}, el("code", {title: job.id}, short(job.id)), job.template ? ` ${job.template}` : ""),
    el("td", {}, job.user || ""), el("td", {}, badge(job.status)), el("td", {}, job.instance || ""),
    el("td", {}, job.status === "running" ? bar(job.fraction) : ""), el("td", {}, shown), el("td", {}, action));
}

function render(snap) {
  actsOnFleet = snap.operator.acts_on_fleet;
  document.getElementById("operator").textContent = `${snap.operator.name} (${snap.operator.role})`;
  document.getElementById("credits").textContent = `${snap.credits_today} credits spent today`;
  document.getElementById("instances").replaceChildren(...snap.instances.map(instanceCard));
  fill(document.querySelector("#queues tbody"), snap.queues.map((q) =>
    el("tr", {"data-queue": q.name, "data-depth": String(q.depth)}, el("td", {}, q.name),
       el("td", {class: "num"}, q.depth))), "no queues", 2);
  fill(document.querySelector("#pending tbody"), snap.pending.map((p) =>
    el("tr", {"data-user": p.user}, el("td", {class: "num"}, p.turn), el("td", {}, p.user),
       el("td", {class: "num"}, p.pending), el("td", {class: "num"}, p.weight))), "nobody waits", 4);
  fill(document.querySelector("#webhooks tbody"), snap.webhooks_failing.map((w) =>
    el("tr", {"data-delivery": w.id}, el("td", {}, el("code", {title: w.url}, short(w.job_id))), el("td", {}, w.event),
       el("td", {class: "num"}, w.attempts), el("td", {class: "error"}, w.last || w.state))), "all delivered", 4);
  fill(document.querySelector("#jobs tbody"), snap.jobs.map(jobRow), "no jobs yet", 7);
}

function problem(text) { document.getElementById("problem").textContent = text || ""; }

async function cancelJob(id) {
  const answer = await fetch(`/dashboard/jobs/${encodeURIComponent(id)}/cancel`,
                             {method: "POST", credentials: "same-origin"});
  if (!answer.ok) {
    const body = await answer.json().catch(() => ({}));
    problem(`cancel ${short(id)}: ${body.message || answer.status}`);
  } else problem("");
}

async function act(name, action) {
  const answer = await fetch(`/dashboard/instances/${encodeURIComponent(name)}/${action}`,
                             {method: "POST", credentials: "same-origin"});
  const body = await answer.json().catch(() => ({}));
  problem(answer.ok ? "" : `${action} ${name}: ${body.message || answer.status}`);
}

function live() {
  const state = document.getElementById("live");
  const stream = new EventSource("/dashboard/events");
  stream.addEventListener("snapshot", (event) => {
    render(JSON.parse(event.data));
    state.textContent = "live"; state.className = "badge ok";
  });
  stream.onerror = () => { state.textContent = "reconnecting…"; state.className = "badge off"; };
}

async function start() {
  const answer = await fetch("/dashboard/snapshot", {credentials: "same-origin"});
  if (answer.status === 401) { window.location.reload(); return; }
  if (answer.ok) render(await answer.json());
  else problem(`snapshot: ${answer.status}`);
  live();
}

document.addEventListener("DOMContentLoaded", start);
