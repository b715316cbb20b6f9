// The live dashboard of a Power Mode session: reads the server's named SSE events (hello, status, lanes, gone) and
// draws them; in live mode it also answers approvals, sends messages and changes tasks through the JSON API.
//
// Everything the server sends comes from agents and is untrusted: it reaches the page only as text (textContent,
// createTextNode, SVG text nodes), never as markup. Nothing keeps a growing list of events: each status replaces the
// one before, and the lane cells are bounded by the server's bins.
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";
  const CUT = 300;          // the longest text shown from an agent
  const DRAWN_KEEP = 1000;  // window.popkitDrawn keeps this many entries
  const MAX_CARDS = 60;     // a task column shows this many cards, and counts the rest

  function meta(name) {
    const node = document.querySelector(`meta[name="${name}"]`);
    return node ? node.getAttribute("content") || "" : "";
  }
  const TOKEN = meta("popkit-token");
  let MODE = meta("popkit-mode") === "replay" ? "replay" : "live";

  // -- small helpers ----------------------------------------------------------------------------------------------
  const $ = id => document.getElementById(id);
  function cut(value, room) {
    const text = value === null || value === undefined ? "" : String(value);
    const limit = room || CUT;
    return text.length > limit ? text.slice(0, limit) + "\u2026" : text;
  }
  function h(name, cls, text, parent) {
    const node = document.createElement(name);
    if (cls) node.className = cls;
    if (text !== null && text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function s(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    if (attrs) for (const k in attrs) node.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(node);
    return node;
  }
  const obj = v => (v && typeof v === "object" && !Array.isArray(v)) ? v : {};
  const arr = v => Array.isArray(v) ? v : [];
  const num = v => (typeof v === "number" && isFinite(v)) ? v : 0;
  const pad = n => String(n).padStart(2, "0");
  function clock(seconds) {  // epoch seconds -> "03:40:05"
    const d = new Date(seconds * 1000);
    return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  }
  function stamp(iso) {  // "2026-12-07T03:40:05.123Z" -> "2026-12-07 03:40:05"
    if (typeof iso !== "string") return "";
    return iso.replace("T", " ").replace(/\.\d+/, "").replace(/Z$/, "");
  }
  function epoch(iso) {
    const t = typeof iso === "string" ? Date.parse(iso) : NaN;
    return isNaN(t) ? null : t / 1000;
  }
  function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }

  // -- state ------------------------------------------------------------------------------------------------------
  let hello = null;         // the last hello
  let status = null;        // the status drawn (live: the last one; replay: the one at the slider)
  let statusFresh = false;  // a status arrived since the last render
  let lanes = null;         // the last lanes message without its cells
  const cells = new Map();  // "lane|kind|column" -> cell
  let cellsFull = true;     // every cell must be drawn again
  const cellsDirty = new Set();
  let lanesVersion = 0;
  let cursor = null;        // replay: {seq, ts}
  let connection = "connecting";
  let stopped = false;
  const last = {};          // section -> the JSON of the input it was last drawn from
  let frame = 0;

  window.popkitDrawn = window.popkitDrawn || [];

  const DEFAULT_KINDS = ["tool", "tool_failed", "heartbeat", "insight", "message", "claimed", "completed", "failed",
    "orphaned", "lost", "asked", "answered", "doubtful", "joined", "idle", "left", "other"]
    .map(id => ({id, label: id.replace("_", " ")}));
  const kinds = () => (hello && Array.isArray(hello.kinds) && hello.kinds.length) ? hello.kinds : DEFAULT_KINDS;

  function schedule() {
    if (!frame) frame = requestAnimationFrame(render);
  }
  function changed(section, input) {
    const json = JSON.stringify(input === undefined ? null : input);
    if (last[section] === json) return false;
    last[section] = json;
    return true;
  }

  function names() { return obj(status && status.names); }
  function nameOf(key) {  // the one short name status gives each agent, the same in every section
    if (key === null || key === undefined) return "";
    const name = names()[key];
    if (typeof name === "string" && name) return name;
    const agent = obj(obj(status && status.agents)[key]);
    if (typeof agent.name === "string" && agent.name) return agent.name;
    if (lanes) for (const lane of arr(lanes.lanes)) if (lane && lane.key === key && lane.name) return lane.name;
    return String(key);
  }
  const LIVE_STATES = ["active", "idle", "watching"];
  function liveAgents() {
    const out = [];
    for (const [key, agent] of Object.entries(obj(status && status.agents))) {
      const a = obj(agent);
      if (LIVE_STATES.includes(a.state)) out.push([key, cut(nameOf(key), 60)]);
    }
    return out;
  }
  // A page acts only where its dashboard may: live, connected, and not inside an agent's session or a session that
  // is not the active one any more (hello.can_answer says so, and why_not says why).
  const canAct = () => MODE === "live" && !stopped && !!(hello && hello.can_answer);
  const canAnswer = () => canAct() && !!(hello && hello.can_answer);

  // -- keyed lists: keep a card (and what is typed into it) while its data stays the same ------------------------
  function carry(from, to) {
    const focused = document.activeElement;
    for (const old of from.querySelectorAll("[data-keep]")) {
      const fresh = to.querySelector(`[data-keep="${old.dataset.keep}"]`);
      if (!fresh) continue;
      if (old.tagName === "INPUT") fresh.value = old.value;
      else if (old.tagName === "SELECT") {
        if (Array.from(fresh.options).some(o => o.value === old.value)) fresh.value = old.value;
      } else { fresh.textContent = old.textContent; fresh.className = old.className; }
      if (old === focused) {
        fresh.dataset.refocus = "1";
        if (old.tagName === "INPUT") {
          fresh.dataset.selStart = String(old.selectionStart || 0);
          fresh.dataset.selEnd = String(old.selectionEnd || 0);
        }
      }
    }
  }
  function refocus(node) {
    const target = node.querySelector("[data-refocus]");
    if (!target) return;
    delete target.dataset.refocus;
    target.focus();
    if (target.tagName === "INPUT" && target.dataset.selStart !== undefined) {
      try { target.setSelectionRange(Number(target.dataset.selStart), Number(target.dataset.selEnd)); } catch (e) { /* */ }
    }
    delete target.dataset.selStart;
    delete target.dataset.selEnd;
  }
  // items: [{key, sig, ...}]; build(item) -> a new element; attr: the dataset name holding the key
  function reconcile(container, items, attr, build, update) {
    const old = new Map();
    for (const child of Array.from(container.children)) {
      if (child.dataset[attr] !== undefined && !old.has(child.dataset[attr])) old.set(child.dataset[attr], child);
      else child.remove();
    }
    let prev = null;
    for (const item of items) {
      let node = old.get(item.key);
      old.delete(item.key);
      if (node && node._sig !== item.sig) {
        const fresh = build(item);
        carry(node, fresh);
        node.replaceWith(fresh);
        refocus(fresh);
        node = fresh;
      } else if (!node) {
        node = build(item);
      }
      node._sig = item.sig;
      if (update) update(node, item);
      const want = prev ? prev.nextSibling : container.firstChild;
      if (want !== node) container.insertBefore(node, want);
      prev = node;
    }
    for (const node of old.values()) node.remove();
  }
  function fillSelect(select, options, empty) {  // options: [[value, label]]; keeps the chosen value when it stays
    const was = select.value;
    const want = (empty ? [["", empty]] : []).concat(options);
    const same = select.options.length === want.length &&
      want.every(([v, l], i) => select.options[i].value === v && select.options[i].textContent === l);
    if (same) return;
    select.replaceChildren();
    for (const [value, label] of want) {
      const option = h("option", null, label, select);
      option.value = value;
    }
    if (want.some(([v]) => v === was)) select.value = was;
  }

  // -- the header -------------------------------------------------------------------------------------------------
  function renderHeader() {
    const st = obj(status);
    const coordinator = obj(st.coordinator);
    const replication = st.replication && typeof st.replication === "object" ? st.replication : null;
    const mode = obj(st.mode);
    const agents = Object.values(obj(st.agents)).map(obj);
    const input = {
      objective: typeof st.objective === "string" ? st.objective : null,
      session: typeof st.session === "string" ? st.session : (hello && typeof hello.session === "string" ? hello.session : null),
      closed: st.closed,
      mode, coordinator: {health: coordinator.health, ago: coordinator.ago, trouble: coordinator.trouble},
      replication, working: agents.filter(a => a.state === "active").length,
      open: arr(st.unfinished_tasks).length, pending: arr(st.pending_approvals).length, view: MODE,
    };
    if (!changed("header", input)) return;
    $("objective").textContent = cut(input.objective || "(no objective set)", 400);
    document.title = `popkit-power \u00b7 ${cut(input.objective || input.session || "dashboard", 80)}`;
    $("session").textContent = cut(input.session || "?", 80) + (input.closed ? " (closed)" : "");

    const modeNode = $("mode");
    modeNode.textContent = cut(mode.mode || "?", 40);
    modeNode.title = cut(mode.reason || "", 500);
    modeNode.dataset.ok = mode.ok === false ? "no" : "yes";

    const coord = $("coordinator");
    const health = coordinator.health || "none";
    coord.textContent = health + (coordinator.ago && health !== "none" ? ` \u00b7 ${cut(coordinator.ago, 40)}` : "") +
      (coordinator.trouble ? ` \u00b7 ${cut(coordinator.trouble, 120)}` : "");
    coord.dataset.health = health;

    const repl = $("replication");
    if (!replication) {
      repl.textContent = "none";
      repl.dataset.health = "none";
    } else {
      const parts = [replication.running ? "running" : "stopped"];
      if (replication.transport) parts.push(cut(replication.transport, 60));
      parts.push(`${num(replication.behind)} behind`);
      if (replication.failing) parts.push("failing" + (replication.last_error ? ": " + cut(replication.last_error, 120) : ""));
      repl.textContent = parts.join(" \u00b7 ");
      repl.dataset.health = replication.failing ? "failing" : replication.running ? "running" : "stopped";
    }
    $("count-agents").textContent = String(input.working);
    $("count-tasks").textContent = String(input.open);
    $("count-approvals").textContent = String(input.pending);
    $("count-approvals").dataset.some = input.pending ? "yes" : "no";
  }

  function setConnection(state, text) {
    connection = state;
    const node = $("connection");
    node.textContent = text;
    node.dataset.state = state;
  }

  let noticeTimer = 0;
  function notice(text, error) {
    const node = $("notice");
    node.textContent = cut(text, 600);
    node.classList.toggle("error", !!error);
    node.classList.add("shown");
    node.classList.remove("stale");
    clearTimeout(noticeTimer);
    if (!error) noticeTimer = setTimeout(() => node.classList.add("stale"), 30000);
  }

  // -- problems ---------------------------------------------------------------------------------------------------
  function renderProblems() {
    const problems = arr(status && status.problems).map(p => typeof p === "string" ? {level: "warn", text: p} : obj(p))
      .filter(p => p.text || p.check);
    if (!changed("problems", problems)) return;
    const list = $("problem-list");
    list.replaceChildren();
    $("problems").hidden = problems.length === 0;
    for (const p of problems) {
      const li = h("li", p.level === "FAIL" ? "fail" : "warn", null, list);
      li.dataset.level = String(p.level || "warn");
      h("span", "level", p.level === "FAIL" ? "FAIL" : "warn", li);
      if (p.check) h("span", "check", cut(p.check, 60), li);
      h("span", "text", cut(p.text), li);
    }
  }

  // -- approvals --------------------------------------------------------------------------------------------------
  // A card answered from this page stays (buttons and all) for a while after it stops being pending, so that its
  // outcome stays readable and a second click reaches the server, which refuses it (the page shows why).
  const RETAIN_MS = 30000;
  const clicked = new Map();      // request id -> the time its card was last clicked (bounded: expired ones go)
  const shownPending = new Map(); // request id -> the item its card was drawn from
  let retainTimer = 0;
  function renderApprovals() {
    const st = obj(status);
    const approvals = obj(st.approvals);
    const pending = arr(st.pending_approvals).filter(id => typeof id === "string").map(id => {
      const a = obj(approvals[id]);
      return {key: id, question: a.question, from: a.from, name: nameOf(a.from), options: a.options, asked: a.asked,
              ago: a.ago};
    });
    const now = Date.now();
    const pendingIds = new Set(pending.map(item => item.key));
    const retained = [];
    for (const [id, at] of clicked) {
      if (pendingIds.has(id)) continue;
      if (now - at > RETAIN_MS || !shownPending.has(id)) { clicked.delete(id); continue; }
      retained.push(Object.assign({}, shownPending.get(id), {resolved: true, ago: null}));
    }
    for (const id of Array.from(shownPending.keys())) if (!pendingIds.has(id) && !clicked.has(id)) shownPending.delete(id);
    for (const item of pending) shownPending.set(item.key, item);
    if (retained.length && !retainTimer) {
      retainTimer = setTimeout(() => { retainTimer = 0; schedule(); }, 2000);
    }
    const answered = arr(st.answered_recently).map(obj);
    const input = {pending, answered, answer: canAnswer(), act: canAct(), retained: retained.map(item => item.key),
                   why: hello && hello.why_not, names: answered.map(a => nameOf(a.from))};
    if (!changed("approvals", input)) return;
    const why = $("approvals-why");
    const showWhy = MODE === "live" && !input.answer && !!input.why;
    why.hidden = !showWhy;
    why.textContent = showWhy ? cut(input.why) : "";
    $("approvals-none").hidden = pending.length + retained.length > 0;
    $("approvals").dataset.pending = String(pending.length);
    for (const item of pending.concat(retained)) item.sig = JSON.stringify([item.question, item.from, item.name, item.options, input.answer,
                                                           input.act, input.why]);
    reconcile($("approval-list"), pending.concat(retained), "request", buildApproval, (node, item) => {
      const asked = node.querySelector(".asked");
      const text = item.resolved ? "answered \u00b7 #" + cut(item.key, 40)
        : (item.ago ? "asked " + cut(item.ago, 40) + " \u00b7 " : "") + "#" + cut(item.key, 40);
      if (asked && asked.textContent !== text) asked.textContent = text;
      if (item.resolved) node.dataset.resolved = "yes"; else delete node.dataset.resolved;
    });

    $("answered-head").hidden = answered.length === 0;
    const list = $("answered-list");
    list.replaceChildren();
    for (const a of answered.slice().reverse()) {
      const card = h("div", "card answered-card", null, list);
      card.dataset.answered = String(a.request || "");
      card.dataset.status = String(a.status || "");
      const top = h("div", "card-top", null, card);
      h("span", "verdict " + (a.status === "granted" ? "granted" : "denied"), String(a.status || "?"), top);
      h("span", "who", nameOf(a.from) ? "asked by " + cut(nameOf(a.from), 60) : "", top);
      h("div", "question", cut(a.question), card);
      const by = ["by " + cut(a.by || "?", 60)];
      if (a.via) by.push("via " + cut(a.via, 40));
      if (a.answered) by.push(stamp(a.answered).slice(11) + " UTC");
      h("div", "meta", by.join(" \u00b7 "), card);
    }
  }
  function buildApproval(item) {
    const card = h("div", "card approval");
    card.dataset.request = item.key;
    const top = h("div", "card-top", null, card);
    h("span", "who", cut(item.name || "?", 80), top);
    h("span", "meta asked", null, top);
    h("div", "question", cut(item.question || "(no question)"), card);
    const options = arr(item.options);
    if (options.length) {
      const list = h("div", "options", "options: ", card);
      options.slice(0, 12).forEach((o, n) => {
        if (n) list.appendChild(document.createTextNode(" \u00b7 "));
        h("span", "option", cut(typeof o === "string" ? o : JSON.stringify(o), 80), list);
      });
    } else if (item.options && !Array.isArray(item.options)) {
      h("div", "options", "options: " + cut(JSON.stringify(item.options), 200), card);
    }
    if (MODE === "live" && !stopped && !canAnswer()) {
      h("div", "why-not", cut(hello && hello.why_not ? hello.why_not : "approvals cannot be answered here"), card);
    }
    if (canAnswer()) {
      const row = h("div", "row", null, card);
      const note = h("input", "note", null, row);
      note.type = "text";
      note.placeholder = "note (optional)";
      note.maxLength = 1000;
      note.autocomplete = "off";
      note.dataset.field = "note";
      note.dataset.keep = "note";
      note.setAttribute("aria-label", "note");
      const approve = h("button", "approve", "Approve", row);
      approve.type = "button";
      approve.dataset.action = "approve";
      const deny = h("button", "deny", "Deny", row);
      deny.type = "button";
      deny.dataset.action = "deny";
    }
    const outcome = h("div", "outcome", null, card);
    outcome.dataset.keep = "outcome";
    outcome.setAttribute("role", "status");
    return card;
  }

  // -- agents -----------------------------------------------------------------------------------------------------
  const AGENT_RANK = {active: 0, watching: 1, idle: 2, lost: 3, left: 4};
  function renderAgents() {
    const st = obj(status);
    const tasks = obj(st.tasks);
    const items = Object.entries(obj(st.agents)).map(([key, agent], n) => {
      const a = obj(agent);
      const task = a.current_task;
      const title = a.current_task_title || (task && obj(tasks[task]).title) || null;
      const message = a.last_message && typeof a.last_message === "object" ? a.last_message : null;
      return {key, n, name: nameOf(key), state: a.state || a.status || "?", label: a.label, task, title,
              files: arr(a.recent_files).slice(0, 3), news: message ? message.text : null,
              newsTo: message ? message.to : null, newsType: message ? message.type : null,
              ago: a.ago, lost: a.lost_reason, left: a.left_reason, calls: a.tool_calls, failures: a.failures};
    });
    items.sort((x, y) => ((AGENT_RANK[x.state] ?? 5) - (AGENT_RANK[y.state] ?? 5)) || x.n - y.n);
    const departed = num(st.departed_not_listed && typeof st.departed_not_listed === "object"
      ? Object.keys(st.departed_not_listed).length : st.departed_not_listed);
    if (!changed("agents", [items, departed])) return;
    for (const item of items) item.sig = JSON.stringify(Object.assign({}, item, {ago: null, n: null}));
    reconcile($("agents"), items, "agent", buildAgent, (node, item) => {
      const ago = node.querySelector(".ago-text");
      const text = item.ago ? cut(item.ago, 30) : "";
      if (ago && ago.textContent !== text) ago.textContent = text;
    });
    $("agents-none").hidden = items.length > 0;
    const counts = {};
    for (const item of items) counts[item.state] = (counts[item.state] || 0) + 1;
    const note = Object.keys(AGENT_RANK).filter(k => counts[k]).map(k => `${counts[k]} ${k}`);
    if (departed) note.push(`${departed} departed, not listed`);
    $("agents-note").textContent = note.join(" \u00b7 ");
  }
  function buildAgent(item) {
    const row = h("div", "agent");
    row.dataset.agent = item.key;
    row.dataset.state = item.state;
    const who = h("div", "who", null, row);
    const name = h("span", "name", cut(item.name, 80), who);
    name.dataset.field = "name";
    name.title = cut(item.key, 200);
    if (item.label) h("span", "label", cut(item.label, 80), who);
    const state = h("span", "state", item.state, row);
    state.dataset.field = "state";
    state.dataset.state = item.state;
    const task = h("div", "task", null, row);
    task.dataset.field = "task";
    if (item.task) {
      h("span", "task-id", cut(item.task, 40), task);
      if (item.title) task.appendChild(document.createTextNode(" " + cut(item.title, 200)));
      task.classList.add("clamp");
      task.title = cut(item.task + (item.title ? " " + item.title : ""), 300);
    } else {
      h("span", "dim", "\u2014", task);
    }
    const files = h("div", "files", null, row);
    files.dataset.field = "files";
    for (const f of item.files) {
      const path = String(f);
      h("span", "file", path.length > 56 ? "\u2026" + path.slice(-55) : path, files).title = cut(path, 300);
    }
    const news = h("div", "news", null, row);
    news.dataset.field = "news";
    if (item.state === "lost" && item.lost) h("div", "lost-reason", "lost: " + cut(item.lost, 200), news);
    if (item.state === "left" && item.left) h("div", "dim", "left: " + cut(item.left, 100), news);
    if (item.news) {
      const text = h("div", "news-text clamp", null, news);
      text.title = cut(item.news);
      if (item.newsTo) h("span", "dim", "to " + cut(nameOf(item.newsTo), 60) + ": ", text);
      else if (item.newsType === "insight.shared") h("span", "dim", "insight: ", text);
      text.appendChild(document.createTextNode(cut(item.news)));
    }
    const ago = h("span", "ago", null, row);
    ago.dataset.field = "ago";
    h("span", "ago-text", null, ago);
    if (typeof item.calls === "number") {
      h("span", "calls", plural(item.calls, "call") + (item.failures ? `, ${item.failures} failed` : ""), ago);
    }
    return row;
  }

  // -- tasks ------------------------------------------------------------------------------------------------------
  const COLUMN_OF = {parked: "parked", orphaned: "orphaned", open: "open", claimed: "claimed", assigned: "claimed"};
  function renderTasks() {
    const st = obj(status);
    const tasks = obj(st.tasks);
    const order = arr(st.unfinished_tasks).filter(id => typeof id === "string" && tasks[id]);
    const seen = new Set(order);
    for (const id of Object.keys(tasks)) if (!seen.has(id)) {
      const t = obj(tasks[id]);
      if (COLUMN_OF[t.status]) order.push(id);
    }
    const live = canAct() ? liveAgents() : [];
    const columns = {parked: [], orphaned: [], open: [], claimed: [], finished: []};
    const totals = {parked: 0, orphaned: 0, open: 0, claimed: 0, finished: 0};
    for (const id of order) {
      const t = obj(tasks[id]);
      const column = COLUMN_OF[t.status] || "open";
      totals[column]++;
      if (columns[column].length >= MAX_CARDS) continue;  // a column shows its first cards and counts the rest
      columns[column].push({key: id, title: t.title, status: t.status || "?", owner: t.owner,
                            ownerName: t.owner ? nameOf(t.owner) : null, attempts: t.attempts,
                            previous: t.previous_owner, previousName: t.previous_owner ? nameOf(t.previous_owner) : null,
                            reason: t.reason || t.orphan_reason || null, live, act: canAct()});
    }
    const finished = Object.entries(obj(st.finished_tasks)).map(([id, task]) => {
      const t = obj(task);
      return {key: id, title: t.title, status: t.status || "completed", owner: t.completed_by || t.owner,
              ownerName: (t.completed_by || t.owner) ? nameOf(t.completed_by || t.owner) : null,
              attempts: t.attempts, previous: t.previous_owner,
              previousName: t.previous_owner ? nameOf(t.previous_owner) : null, result: t.result,
              finished: t.finished || "", act: false};
    });
    finished.sort((a, b) => (a.finished < b.finished ? 1 : a.finished > b.finished ? -1 : 0));
    columns.finished = finished.slice(0, 30);
    totals.finished = finished.length;
    if (!changed("tasks", [columns, totals])) return;
    for (const column of Object.keys(columns)) {
      const node = document.querySelector(`#tasks [data-column="${column}"]`);
      const items = columns[column];
      for (const item of items) item.sig = JSON.stringify(item);
      reconcile(node.querySelector(".list"), items, "task", buildTask);
      node.querySelector(".n").textContent = totals[column] > items.length
        ? `${items.length} of ${totals[column]}` : String(items.length);
      node.dataset.count = String(items.length);
    }
    const counts = obj(st.task_counts);
    $("tasks-note").textContent = Object.keys(counts).sort().map(k => `${num(counts[k])} ${k}`).join(" \u00b7 ");
  }
  function buildTask(item) {
    const card = h("div", "card task");
    card.dataset.task = item.key;
    card.dataset.status = item.status;
    const top = h("div", "card-top", null, card);
    h("span", "task-id", cut(item.key, 40), top);
    h("span", "status", item.status, top);
    h("div", "title", cut(item.title || "(untitled)"), card);
    const facts = [];
    if (item.ownerName) facts.push((item.status === "completed" || item.status === "failed" ? "by " : "") +
      cut(item.ownerName, 60));
    if (typeof item.attempts === "number" && item.attempts) facts.push(plural(item.attempts, "attempt"));
    if (item.finished) facts.push(stamp(item.finished).slice(11) + " UTC");
    if (facts.length) h("div", "meta", facts.join(" \u00b7 "), card);
    if (item.previous) h("div", "handover", "handed over from " + cut(item.previousName || item.previous, 80), card);
    if (item.reason) h("div", "meta", cut(item.reason, 200), card);
    if (item.result) h("div", "result", cut(item.result, 200), card);
    if (item.act) {
      const row = h("div", "row", null, card);
      const release = h("button", "small", "Release", row);
      release.type = "button";
      release.dataset.action = "release";
      release.title = "put the task back for anyone to take";
      const select = h("select", "small", null, row);
      select.dataset.action = "reassign-to";
      select.dataset.keep = "reassign-to";
      select.setAttribute("aria-label", "reassign to");
      fillSelect(select, item.live.filter(([key]) => key !== item.owner), "reassign to\u2026");
      const reassign = h("button", "small", "Reassign", row);
      reassign.type = "button";
      reassign.dataset.action = "reassign";
      const outcome = h("div", "outcome", null, card);
      outcome.dataset.keep = "outcome";
    }
    return card;
  }

  // -- insights and machines --------------------------------------------------------------------------------------
  function renderInsights() {
    const list = arr(status && status.insights).map(obj);
    const shown = list.slice(-60).reverse().map(i => ({from: nameOf(i.from), text: i.text, tags: arr(i.tags).slice(0, 8),
                                                      ts: i.ts, dup: i.duplicates}));
    if (!changed("insights", [shown, list.length])) return;
    const box = $("insights");
    box.replaceChildren();
    $("insights-none").hidden = shown.length > 0;
    $("insights-note").textContent = list.length ? String(list.length) : "";
    for (const i of shown) {
      const card = h("div", "insight", null, box);
      const top = h("div", "card-top", null, card);
      h("span", "who", cut(i.from || "?", 60), top);
      h("span", "meta", stamp(i.ts).slice(11) + (i.dup ? ` \u00b7 also said ${i.dup} more time${i.dup === 1 ? "" : "s"}` : ""), top);
      h("div", "text", cut(i.text), card);
      if (i.tags.length) {
        const tags = h("div", "tags", null, card);
        for (const t of i.tags) h("span", "tag", cut(t, 40), tags);
      }
    }
  }
  function renderMachines() {
    const st = obj(status);
    const machines = obj(st.machines);
    const replication = st.replication && typeof st.replication === "object" ? st.replication : null;
    const input = [machines, replication];
    if (!changed("machines", input)) return;
    const box = $("machine-list");
    box.replaceChildren();
    const origins = Object.keys(machines);
    $("machines").hidden = origins.length === 0 && !replication;
    for (const origin of origins) {
      const m = obj(machines[origin]);
      const row = h("div", "machine", null, box);
      row.dataset.machine = origin;
      h("span", "name", cut(m.host ? `${m.host} (${origin})` : origin, 80), row);
      const health = h("span", "pill", (m.health || "?") + (m.ago ? " \u00b7 " + cut(m.ago, 30) : ""), row);
      health.dataset.health = String(m.health || "none");
    }
    if (replication) {
      const row = h("div", "machine replication", null, box);
      h("span", "name", "replication", row);
      const facts = [replication.running ? "running" : "not running"];
      if (replication.kind) facts.push(cut(replication.kind, 30));
      if (replication.transport) facts.push(cut(replication.transport, 80));
      facts.push(`pushed through ${num(replication.pushed_through)}`, `${num(replication.behind)} behind`);
      if (replication.pulled !== null && replication.pulled !== undefined) facts.push(`pulled ${cut(JSON.stringify(replication.pulled), 60)}`);
      if (replication.errors) facts.push(`${cut(JSON.stringify(replication.errors), 30)} errors`);
      const pill = h("span", "pill", facts.join(" \u00b7 "), row);
      pill.dataset.health = replication.failing ? "failing" : replication.running ? "running" : "stopped";
      if (replication.failing && replication.last_error) h("div", "error-text", cut(replication.last_error), box);
      if (typeof replication.report_age_seconds === "number") {
        h("div", "dim", `last report ${Math.round(replication.report_age_seconds)} s ago`, box);
      }
    }
  }

  // -- lanes ------------------------------------------------------------------------------------------------------
  const STYLE = {  // kind -> [shape, colour, row]  (as the timeline page draws them)
    tool: ["bar", "#64748b"], tool_failed: ["bar", "#dc2626"], heartbeat: ["dot", "#94a3b8", 22],
    insight: ["diamond", "#d97706", 14], message: ["triangle", "#16a34a", 14],
    claimed: ["square-open", "#2563eb", 6], completed: ["square", "#15803d", 6], failed: ["square", "#b91c1c", 6],
    orphaned: ["cross", "#ea580c", 6], lost: ["big-cross", "#dc2626"], asked: ["circle-open", "#9333ea", 14],
    answered: ["circle", "#9333ea", 14], doubtful: ["circle", "#dc2626", 14], joined: ["edge", "#16a34a"],
    idle: ["ring", "#a3a3a3", 22], left: ["edge", "#737373"], other: ["small", "#a8a29e", 22],
  };
  const GUTTER = 180, LANE_H = 30, TOP = 26, RIGHT = 12, MIN_COLS = 32;
  const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  let geo = null;       // the geometry the marks were drawn with
  let svg = null, gBack = null, gFront = null, gLanes = null, gAxis = null, gHand = null, gCursor = null;
  const marks = new Map();  // cell key -> its SVG element

  function shape(kind, x, y, size, parent) {
    const [form, colour] = STYLE[kind] || STYLE.other;
    const z = size;
    switch (form) {
      case "diamond": return s("path", {d: `M${x} ${y - z}L${x + z} ${y}L${x} ${y + z}L${x - z} ${y}Z`, fill: colour}, parent);
      case "triangle": return s("path", {d: `M${x - z} ${y + z * .8}L${x + z} ${y + z * .8}L${x} ${y - z}Z`, fill: colour}, parent);
      case "square-open": return s("rect", {x: x - z + .75, y: y - z + .75, width: 2 * z - 1.5, height: 2 * z - 1.5,
                                             fill: "#fff", stroke: colour, "stroke-width": 1.5}, parent);
      case "cross": case "big-cross":
        return s("path", {d: `M${x - z} ${y - z}L${x + z} ${y + z}M${x + z} ${y - z}L${x - z} ${y + z}`, stroke: colour,
                          "stroke-width": form === "big-cross" ? 3 : 2, "stroke-linecap": "round", fill: "none"}, parent);
      case "circle": return s("circle", {cx: x, cy: y, r: z, fill: colour}, parent);
      case "circle-open": case "ring":
        return s("circle", {cx: x, cy: y, r: z - .75, fill: "#fff", stroke: colour, "stroke-width": 1.5}, parent);
      case "dot": return s("circle", {cx: x, cy: y, r: z * .6, fill: colour}, parent);
      case "small": return s("rect", {x: x - z * .55, y: y - z * .55, width: z * 1.1, height: z * 1.1, fill: colour}, parent);
      default: return s("rect", {x: x - z, y: y - z, width: 2 * z, height: 2 * z, fill: colour}, parent);
    }
  }
  const fitted = new Map();  // "room|text" -> the text cut to fit (bounded: cleared when large)
  function fit(text, room) {  // cut an SVG text with an ellipsis until it fits `room` pixels
    const full = text.textContent;
    const key = room + "|" + (text.getAttribute("class") || "") + "|" + full;
    if (fitted.has(key)) { text.textContent = fitted.get(key); return; }
    if (fitted.size > 400) fitted.clear();
    fitOnce(text, room, full);
    fitted.set(key, text.textContent);
  }
  function fitOnce(text, room, full) {
    if (!full || text.getComputedTextLength() <= room) return;
    let low = 0, high = full.length;
    while (low < high) {
      const mid = Math.ceil((low + high) / 2);
      text.textContent = full.slice(0, mid) + "\u2026";
      if (text.getComputedTextLength() <= room) low = mid; else high = mid - 1;
    }
    text.textContent = full.slice(0, low) + "\u2026";
  }

  function renderLegend() {
    const list = kinds();
    if (!changed("legend", list)) return;
    const legend = $("legend");
    legend.replaceChildren();
    for (const kind of list) {
      const id = String(kind.id);
      const item = h("span", "item", null, legend);
      item.dataset.kind = id;
      const icon = s("svg", {width: 14, height: 14, viewBox: "0 0 16 16", "aria-hidden": "true"}, item);
      const style = STYLE[id] || STYLE.other;
      if (style[0] === "bar") s("rect", {x: 5, y: 3, width: 6, height: 11, fill: style[1]}, icon);
      else if (style[0] === "edge") s("rect", {x: 7, y: 1, width: 2, height: 14, fill: style[1]}, icon);
      else shape(id, 8, 8, 5, icon);
      h("span", null, cut(kind.label || id, 40), item);
    }
  }

  function geometry() {
    const box = $("lanes");
    const width = Math.max(600, Math.floor(box.clientWidth || 1000));
    const list = arr(lanes && lanes.lanes).map(obj);
    const columns = Math.max(num(lanes && lanes.columns), 0);
    // The x axis grows in steps (MIN_COLS, twice that, ... up to max_columns), not with every new column: each step
    // moves every mark, and a page of thousands of marks redraws them all then.
    const most = Math.max(num(lanes && lanes.max_columns), MIN_COLS);
    const scale = columns <= MIN_COLS ? MIN_COLS : Math.min(most, 2 ** Math.ceil(Math.log2(columns)));
    const plotW = width - GUTTER - RIGHT;
    return {width, rows: list.map(l => l.index), scale, plotW, colW: plotW / scale, bin: num(lanes && lanes.bin_seconds) || 1,
            t0: lanes && typeof lanes.t0 === "number" ? lanes.t0 : null, height: TOP + list.length * LANE_H + 6};
  }
  const xOfOffset = (g, offset) => GUTTER + offset / g.bin * g.colW;
  // Columns are of virtual time: silences longer than ten minutes are cut short (segments: [virtual offset at which
  // time goes on, the real time there], as in the timeline file). Real time <-> offset through them.
  function segmentsOf() {
    const list = arr(lanes && lanes.segments).filter(seg => Array.isArray(seg) && typeof seg[0] === "number"
                                                            && typeof seg[1] === "number");
    return list.length ? list : (lanes && typeof lanes.t0 === "number" ? [[0, lanes.t0]] : []);
  }
  function offsetOf(when) {
    const list = segmentsOf();
    let found = null;
    for (const seg of list) if (seg[1] <= when) found = seg;
    if (found === null) return 0;
    return found[0] + (when - found[1]);
  }
  function realOf(offset) {
    const list = segmentsOf();
    let found = list[0] || [0, 0];
    for (const seg of list) if (seg[0] <= offset) found = seg;
    return found[1] + (offset - found[0]);
  }

  function renderLanes() {
    if (!lanes) return;
    renderLegend();
    const g = geometry();
    const geoKey = JSON.stringify([g.width, g.scale, g.bin, g.t0]);
    // A lane that joins at the end moves no mark: only a change of the rows before it redraws them all.
    const rowsKept = !!geo && geo.rows.length <= g.rows.length && geo.rows.every((index, row) => g.rows[row] === index);
    const full = cellsFull || !geo || geo.key !== geoKey || !rowsKept;
    const laneList = arr(lanes.lanes).map(obj);
    const rowOf = new Map(g.rows.map((index, row) => [index, row]));
    const rowOfKey = new Map();
    laneList.forEach((l, row) => { if (typeof l.key === "string") rowOfKey.set(l.key, row); });
    g.rowOf = rowOf;
    g.rowOfKey = rowOfKey;
    g.key = geoKey;

    if (full) {
      const box = $("lanes");
      box.replaceChildren();
      svg = s("svg", {id: "lanes-svg", width: g.width, height: g.height, viewBox: `0 0 ${g.width} ${g.height}`,
                      role: "img", "aria-label": "what each agent did over time"}, box);
      s("g", {class: "stripes"}, svg);
      gAxis = s("g", {class: "axis"}, svg);
      gLanes = s("g", {class: "lane-names"}, svg);
      gBack = s("g", {class: "marks-back"}, svg);
      gFront = s("g", {class: "marks-front"}, svg);
      gHand = s("g", {class: "handovers"}, svg);
      gCursor = s("g", {class: "cursor", "pointer-events": "none"}, svg);
      marks.clear();
      geo = g;
      last.laneNames = null; last.handovers = null; last.cursor = null; last.axis = null;
      for (const cell of cells.values()) drawCell(cell);
    } else {
      if (geo.height !== g.height) {
        svg.setAttribute("height", g.height);
        svg.setAttribute("viewBox", `0 0 ${g.width} ${g.height}`);
      }
      geo = g;
      for (const key of cellsDirty) {
        const old = marks.get(key);
        if (old) { old.remove(); marks.delete(key); }
        const cell = cells.get(key);
        if (cell) drawCell(cell);
      }
    }
    cellsFull = false;
    cellsDirty.clear();
    renderLaneNames(laneList);
    renderAxis();
    renderHandovers();
    renderCursor();
    const total = laneList.reduce((n, l) => n + num(l.events), 0);
    $("lanes-note").textContent = `${plural(laneList.length, "lane")} \u00b7 ${total.toLocaleString("en")} events` +
      (g.bin ? ` \u00b7 one column = ${g.bin < 120 ? +g.bin.toFixed(2) + " s" : Math.round(g.bin / 60) + " min"}` : "");
  }

  function renderLaneNames(laneList) {
    const input = [geo.width, laneList.map(l => [l.index, l.key, l.name, l.label, l.role, l.state, l.events])];
    if (!changed("laneNames", input)) return;
    const stripes = svg.querySelector(".stripes");
    stripes.replaceChildren();
    gLanes.replaceChildren();
    laneList.forEach((lane, row) => {
      const y = TOP + row * LANE_H;
      if (row % 2 === 0) s("rect", {x: 0, y, width: geo.width, height: LANE_H, fill: "#f6f7f9"}, stripes);
      const group = s("g", {class: "lane"}, gLanes);
      group.setAttribute("data-lane", typeof lane.key === "string" ? lane.key : String(lane.name || lane.index));
      group.setAttribute("data-role", String(lane.role || ""));
      group.setAttribute("data-state", String(lane.state || ""));
      const name = s("text", {x: 8, y: y + 12, class: "lane-name"}, group);
      name.textContent = cut(lane.name || lane.key || "?", 80);
      const label = s("text", {x: 8, y: y + 25, class: "lane-label"}, group);
      label.textContent = [lane.role !== "agent" ? lane.role : null, lane.label, lane.state,
                           num(lane.events).toLocaleString("en") + " ev"].filter(Boolean).map(t => cut(t, 60)).join(" \u00b7 ");
      fit(name, GUTTER - 14);
      fit(label, GUTTER - 14);
      const title = s("title", null, group);
      title.textContent = cut(lane.key ? `${lane.name} (${lane.key})` : lane.name, 300);
    });
  }

  function renderAxis() {
    const g = geo;
    if (!changed("axis", [g.key, g.height])) return;
    gAxis.replaceChildren();
    s("line", {x1: GUTTER, x2: GUTTER, y1: TOP - 4, y2: g.height - 4, stroke: "#d1d5db"}, gAxis);
    if (g.t0 === null) return;
    const total = g.scale * g.bin;
    const step = STEPS.find(st => st * g.plotW / total >= 110) || STEPS[STEPS.length - 1];
    let first = true;
    for (let offset = Math.ceil(g.t0 / step) * step - g.t0, n = 0; offset <= total && n < 60; offset += step, n++) {
      const x = xOfOffset(g, offset);
      s("line", {x1: x, x2: x, y1: TOP - 4, y2: g.height - 4, stroke: "#e5e7eb"}, gAxis);
      const text = s("text", {x: x + 3, y: TOP - 9, class: "tick"}, gAxis);
      text.textContent = clock(realOf(offset)) + (first ? " UTC" : "");
      first = false;
    }
  }

  function drawCell(cell) {
    const g = geo;
    const [laneIndex, kindIndex, col, count] = cell;
    const row = g.rowOf.get(laneIndex);
    if (row === undefined) return;
    const kind = obj(kinds()[kindIndex]);
    const id = STYLE[kind.id] ? kind.id : "other";
    const [form, colour, at] = STYLE[id];
    const x = GUTTER + (col + .5) * g.colW, y0 = TOP + row * LANE_H;
    const n = Math.max(1, num(count));
    const grow = Math.min(1.7, 1 + Math.log10(n) / 2);
    let node;
    if (form === "bar") {
      const height = Math.min(10, 2 + 1.4 * Math.log2(n + 1));
      node = s("rect", {x: x - Math.max(.6, g.colW * .42), y: y0 + LANE_H - 2 - height, width: Math.max(1.2, g.colW * .84),
                        height, fill: colour}, gBack);
    } else if (form === "edge") {
      node = s("rect", {x: x - 1, y: y0 + 2, width: 2, height: LANE_H - 4, fill: colour}, gBack);
    } else if (form === "big-cross") {
      node = shape(id, x, y0 + LANE_H / 2, 7, gFront);
    } else {
      node = shape(id, x, y0 + at, 3.2 * grow, gFront);
    }
    const key = `${laneIndex}|${kindIndex}|${col}`;
    node.setAttribute("data-cell", key);
    node.setAttribute("data-kind", id);
    marks.set(key, node);
  }

  function renderHandovers() {
    const list = arr(status && status.handovers).map(obj);
    const input = [geo.key, list, [...geo.rowOfKey]];
    if (!changed("handovers", input)) return;
    gHand.replaceChildren();
    if (geo.t0 === null) return;
    const maxOffset = geo.scale * geo.bin;
    for (const ho of list) {
      const from = geo.rowOfKey.get(ho.from), to = geo.rowOfKey.get(ho.to);
      if (from === undefined || to === undefined || from === to) continue;
      const when = epoch(ho.ts);
      if (when === null) continue;
      const offset = Math.max(0, Math.min(maxOffset, offsetOf(when)));
      const x = xOfOffset(geo, offset);
      const y1 = TOP + from * LANE_H + LANE_H / 2, y2 = TOP + to * LANE_H + LANE_H / 2;
      const group = s("g", {class: "handover-mark"}, gHand);
      group.setAttribute("data-handover", String(ho.task || ""));
      const dir = y2 > y1 ? 1 : -1;
      s("line", {x1: x, x2: x, y1, y2: y2 - dir * 5, stroke: "#ea580c", "stroke-width": 2, "stroke-dasharray": "4 2"}, group);
      s("path", {d: `M${x - 4} ${y2 - dir * 7}L${x + 4} ${y2 - dir * 7}L${x} ${y2}Z`, fill: "#ea580c"}, group);
      s("circle", {cx: x, cy: y1, r: 3, fill: "#ea580c"}, group);
      s("line", {x1: x, x2: x, y1, y2, stroke: "transparent", "stroke-width": 10, class: "hit"}, group);
    }
  }

  function renderCursor() {
    const input = [geo.key, MODE === "replay" ? cursor : null];
    if (!changed("cursor", input)) return;
    gCursor.replaceChildren();
    if (MODE !== "replay" || !cursor || geo.t0 === null) return;
    const when = epoch(cursor.ts);
    if (when === null) return;
    const columns = Math.max(num(lanes.columns), 1);
    const offset = Math.max(0, Math.min(columns * geo.bin, offsetOf(when)));
    const x = xOfOffset(geo, offset);
    const end = GUTTER + geo.plotW;
    if (end > x) s("rect", {x, y: TOP - 4, width: end - x, height: geo.height - TOP, fill: "#ffffff", "fill-opacity": .65,
                            class: "dim-after"}, gCursor);
    s("line", {x1: x, x2: x, y1: TOP - 8, y2: geo.height - 2, stroke: "#111827", "stroke-width": 1.5, id: "lanes-cursor"},
      gCursor);
  }

  // the tooltip
  const tip = () => $("tip");
  function showTip(lines, clientX, clientY) {
    const node = tip();
    node.replaceChildren();
    lines.forEach(([k, v], n) => {
      if (n === 0) { h("div", "head", v, node); return; }
      const row = h("div", "tip-row", null, node);
      if (k) h("span", "k", k, row);
      h("span", "v", v, row);
    });
    node.classList.add("shown");
    const box = node.getBoundingClientRect();
    node.style.left = Math.max(4, Math.min(window.innerWidth - box.width - 8, clientX + 14)) + "px";
    const below = clientY + 16 + box.height <= window.innerHeight;
    node.style.top = (below ? clientY + 16 : Math.max(4, clientY - box.height - 12)) + "px";
  }
  function hideTip() { tip().classList.remove("shown"); }
  function cellLines(key) {
    const cell = cells.get(key);
    if (!cell || !lanes) return null;
    const [laneIndex, kindIndex, , count, first, lastOffset, sample] = cell;
    const lane = obj(arr(lanes.lanes).find(l => l && l.index === laneIndex));
    const kind = obj(kinds()[kindIndex]);
    const t0 = typeof lanes.t0 === "number" ? lanes.t0 : null;
    let range = "";
    if (t0 !== null && typeof first === "number") {
      const a = clock(t0 + first), b = clock(t0 + (typeof lastOffset === "number" ? lastOffset : first));
      range = (a === b ? a : `${a} to ${b}`) + " UTC";
    }
    const times = num(count) > 1 ? `${num(count).toLocaleString("en")} \u00d7 ` : "";
    const lines = [["", cut(`${times}${kind.label || kind.id || "event"} \u00b7 ${lane.name || "?"} \u00b7 ${range}`)]];
    const sm = obj(sample);
    if (num(count) > 1) lines.push(["", "one of them:"]);
    for (const field of ["seq", "ts", "type"]) if (sm[field] !== undefined && sm[field] !== null) lines.push([field, cut(sm[field], 80)]);
    if (sm.from) lines.push(["from", cut(nameOf(sm.from), 120)]);
    if (sm.to) lines.push(["to", cut(typeof sm.to === "string" ? nameOf(sm.to) : JSON.stringify(sm.to), 120)]);
    let n = 0;
    for (const [k, v] of Object.entries(obj(sm.data))) {
      if (n++ >= 14) { lines.push(["", "\u2026"]); break; }
      const text = k === "agent" && typeof v === "string" ? nameOf(v) : typeof v === "string" ? v : JSON.stringify(v);
      lines.push([cut(k, 40), cut(text, 300)]);
    }
    return lines;
  }
  function handoverLines(task) {
    const ho = arr(status && status.handovers).map(obj).filter(x => String(x.task) === task).pop();
    if (!ho) return null;
    return [["", cut(`hand-over of ${ho.task}` + (ho.title ? `: ${ho.title}` : ""))],
            ["from", cut(nameOf(ho.from), 100)], ["to", ho.to ? cut(nameOf(ho.to), 100) : "anyone"],
            ["why", cut(ho.why || "?")], ["at", stamp(ho.ts) + " UTC" + (ho.seq !== undefined ? ` (seq ${ho.seq})` : "")]];
  }
  function onLanesMove(evt) {
    const target = evt.target && evt.target.closest ? evt.target.closest("[data-cell],[data-handover]") : null;
    if (!target) { hideTip(); return; }
    const lines = target.hasAttribute("data-cell") ? cellLines(target.getAttribute("data-cell"))
      : handoverLines(target.getAttribute("data-handover"));
    if (lines) showTip(lines, evt.clientX, evt.clientY); else hideTip();
  }

  // -- the render loop --------------------------------------------------------------------------------------------
  function render() {
    frame = 0;
    try {
      if (status) {
        renderHeader();
        renderProblems();
        renderApprovals();
        renderAgents();
        renderTasks();
        renderInsights();
        renderMachines();
        renderForms();
      }
      if (lanes && changed("lanesAll", [lanesVersion, geometryWidth(), status && status.handovers, cursor, MODE])) {
        renderLanes();
      }
    } finally {
      if (status && statusFresh) {
        statusFresh = false;
        const seq = typeof status.drawn_through === "number" ? status.drawn_through
          : obj(status.journal).records_through_seq;
        document.body.dataset.drawnSeq = String(seq);
        const drawn = window.popkitDrawn;
        drawn.push({seq, at: Date.now()});
        if (drawn.length > DRAWN_KEEP) drawn.splice(0, drawn.length - DRAWN_KEEP);
      }
    }
  }
  function geometryWidth() { return Math.floor($("lanes").clientWidth || 0); }

  function renderForms() {
    const act = canAct();
    $("act").hidden = !act;
    document.body.dataset.view = MODE;
    if (!act) return;
    const live = liveAgents();
    if (!changed("forms", live)) return;
    fillSelect($("send-agent"), live, live.length ? null : "(no live agent)");
    fillSelect($("task-to"), live, "anyone");
  }

  // -- actions ----------------------------------------------------------------------------------------------------
  async function post(path, body) {
    let response;
    try {
      response = await fetch(path, {method: "POST", credentials: "same-origin",
                                    headers: {"Content-Type": "application/json", "X-Popkit-Token": TOKEN,
                                              "X-Popkit-Session": (hello && hello.session) || ""},
                                    body: JSON.stringify(body)});
    } catch (error) {
      return {ok: false, error: "the dashboard server did not answer"};
    }
    let data = null;
    try { data = await response.json(); } catch (error) { data = null; }
    data = obj(data);
    if (response.ok && data.ok) return {ok: true, message: String(data.message || "done")};
    return {ok: false, error: String(data.error || data.message || `the server refused (HTTP ${response.status})`)};
  }
  function report(result, outcome) {
    const text = result.ok ? result.message : result.error;
    notice(text, !result.ok);
    if (outcome && outcome.isConnected) {
      outcome.textContent = cut(text, 400);
      outcome.className = "outcome shown" + (result.ok ? " ok" : " error");
    }
  }

  function onApprovalClick(evt) {
    const button = evt.target.closest ? evt.target.closest("button[data-action]") : null;
    if (!button) return;
    const card = button.closest("[data-request]");
    if (!card) return;
    const action = button.dataset.action;
    if (action !== "approve" && action !== "deny") return;
    const body = {request: card.dataset.request};
    clicked.set(body.request, Date.now());
    const note = card.querySelector('[data-field="note"]');
    if (note && note.value.trim()) body.note = note.value.trim();
    post(`/api/${action}`, body).then(result => {
      // the card may have been drawn again meanwhile: write into the one on the page now
      const now = findByData("request", body.request, $("approval-list")) || card;
      report(result, now.querySelector(".outcome"));
    });
  }
  function findByData(attr, value, root) {
    for (const node of root.querySelectorAll(`[data-${attr}]`)) if (node.getAttribute(`data-${attr}`) === value) return node;
    return null;
  }
  function onTaskClick(evt) {
    const button = evt.target.closest ? evt.target.closest("button[data-action]") : null;
    if (!button) return;
    const card = button.closest("[data-task]");
    if (!card) return;
    const task = card.dataset.task;
    let request;
    if (button.dataset.action === "release") {
      request = post("/api/task/release", {task, reason: "released from the dashboard"});
    } else if (button.dataset.action === "reassign") {
      const select = card.querySelector('select[data-action="reassign-to"]');
      const agent = select ? select.value : "";
      if (!agent) { report({ok: false, error: "choose the agent to give the task to"}, card.querySelector(".outcome")); return; }
      request = post("/api/task/reassign", {task, agent});
    } else return;
    request.then(result => {
      const now = findByData("task", task, $("tasks")) || card;
      report(result, now.querySelector(".outcome"));
    });
  }
  function bindForm(formId, build, clear) {
    $(formId).addEventListener("submit", evt => {
      evt.preventDefault();
      if (!canAct()) return;
      const made = build();
      if (made.error) { notice(made.error, true); return; }
      post(made.path, made.body).then(result => {
        report(result, null);
        if (result.ok && clear) clear.value = "";
      });
    });
  }

  // -- replay -----------------------------------------------------------------------------------------------------
  let replayTimer = 0, replayAsk = 0, sliderTouched = false;
  function setupReplay() {
    const info = hello && hello.replay && typeof hello.replay === "object" ? hello.replay : null;
    const bar = $("replay-bar");
    bar.hidden = MODE !== "replay";
    if (MODE !== "replay" || !info) return;
    const slider = $("slider");
    const first = num(info.first_seq), lastSeq = num(info.last_seq);
    const keep = sliderTouched ? Number(slider.value) : lastSeq;
    slider.min = String(first);
    slider.max = String(lastSeq);
    slider.value = String(Math.max(first, Math.min(lastSeq, keep)));
    if (!sliderTouched) {
      cursor = {seq: lastSeq, ts: info.last_ts};
      showAt(lastSeq, lastSeq, info.last_ts);
    }
  }
  function showAt(seq, lastSeq, ts) {
    $("at").textContent = `seq ${seq} of ${lastSeq}` + (ts ? ` \u00b7 ${stamp(ts)} UTC` : "");
  }
  function onSlide() {
    sliderTouched = true;
    clearTimeout(replayTimer);
    replayTimer = setTimeout(fetchAt, 100);
  }
  async function fetchAt() {
    const slider = $("slider");
    const seq = Number(slider.value);
    const ask = ++replayAsk;
    let data;
    try {
      const response = await fetch(`/api/at?seq=${encodeURIComponent(seq)}`, {credentials: "same-origin",
                                                                             headers: {"X-Popkit-Token": TOKEN}});
      data = await response.json().catch(() => null);
      if (!response.ok) {
        notice(String(obj(data).error || `the server could not go to seq ${seq} (HTTP ${response.status})`), true);
        return;
      }
    } catch (error) {
      notice("the dashboard server did not answer", true);
      return;
    }
    if (ask !== replayAsk) return;  // a later move of the slider won
    data = obj(data);
    if (!data.status || typeof data.status !== "object") return;
    const at = typeof data.seq === "number" ? data.seq : seq;
    const st = data.status;
    if (typeof st.drawn_through !== "number") st.drawn_through = at;
    status = st;
    statusFresh = true;
    cursor = {seq: at, ts: data.ts};
    showAt(at, Number(slider.max), data.ts);
    schedule();
  }

  // -- the stream -------------------------------------------------------------------------------------------------
  function parse(evt) {
    try { return JSON.parse(evt.data); } catch (error) { return null; }
  }
  let source = null;
  function connect() {
    source = new EventSource("/events");
    source.onopen = () => { if (!stopped) setConnection("live", "live"); };
    source.onerror = () => {
      if (stopped) return;
      if (source.readyState === EventSource.CLOSED) {
        setConnection("closed", "disconnected (reload the page)");
      } else {
        setConnection("reconnecting", "reconnecting\u2026");
      }
    };
    source.addEventListener("hello", evt => {
      const data = parse(evt);
      if (!data || typeof data !== "object") return;
      hello = data;
      if (data.mode === "replay" || data.mode === "live") MODE = data.mode;
      document.body.dataset.view = MODE;
      if (connection !== "live") setConnection("live", "live");
      last.approvals = null; last.tasks = null; last.forms = null; last.legend = null;
      cellsFull = true;
      lanesVersion++;
      setupReplay();
      schedule();
    });
    source.addEventListener("status", evt => {
      const data = parse(evt);
      if (!data || typeof data !== "object") return;
      if (MODE === "replay") {
        if (sliderTouched && Number($("slider").value) !== Number($("slider").max)) return;
      }
      status = data;
      statusFresh = true;
      schedule();
    });
    source.addEventListener("lanes", evt => {
      const data = parse(evt);
      if (!data || typeof data !== "object") return;
      const incoming = arr(data.cells);
      if (data.full) { cells.clear(); cellsFull = true; }
      for (const cell of incoming) {
        if (!Array.isArray(cell) || cell.length < 4) continue;
        const key = `${cell[0]}|${cell[1]}|${cell[2]}`;
        cells.set(key, cell);
        if (!cellsFull) cellsDirty.add(key);
      }
      if (cellsDirty.size > 4000) { cellsDirty.clear(); cellsFull = true; }
      lanes = {full: !!data.full, t0: data.t0, bin_seconds: data.bin_seconds, columns: data.columns,
               max_columns: data.max_columns, segments: arr(data.segments), lanes: arr(data.lanes)};
      lanesVersion++;
      schedule();
    });
    source.addEventListener("gone", evt => {
      const data = obj(parse(evt));
      stopped = true;
      source.close();
      setConnection("gone", cut(data.text || "the session ended", 200));
      last.approvals = null; last.tasks = null;
      schedule();
      // The dashboard shows another session now (the active one changed): load the page again to see it.
      if (data.reload === true) setTimeout(() => window.location.reload(), 500);
    });
  }

  // -- start ------------------------------------------------------------------------------------------------------
  function start() {
    document.body.dataset.view = MODE;
    $("act").hidden = MODE !== "live";
    $("replay-bar").hidden = MODE !== "replay";
    $("approval-list").addEventListener("click", onApprovalClick);
    $("tasks").addEventListener("click", onTaskClick);
    const lanesBox = $("lanes");
    lanesBox.addEventListener("mousemove", onLanesMove);
    lanesBox.addEventListener("mouseleave", hideTip);
    bindForm("send-form", () => {
      const agent = $("send-agent").value, text = $("send-text").value.trim();
      if (!agent) return {error: "choose the agent to send to"};
      if (!text) return {error: "write the message first"};
      return {path: "/api/send", body: {agent, text}};
    }, $("send-text"));
    bindForm("broadcast-form", () => {
      const text = $("broadcast-text").value.trim();
      if (!text) return {error: "write the message first"};
      return {path: "/api/broadcast", body: {text}};
    }, $("broadcast-text"));
    bindForm("task-form", () => {
      const title = $("task-title").value.trim();
      if (!title) return {error: "write the task's title first"};
      const body = {title};
      if ($("task-to").value) body.to = $("task-to").value;
      return {path: "/api/task/add", body};
    }, $("task-title"));
    $("slider").addEventListener("input", onSlide);
    $("notice").addEventListener("click", () => $("notice").classList.add("stale"));
    let resizeTimer = 0;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(schedule, 150);
    });
    connect();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
