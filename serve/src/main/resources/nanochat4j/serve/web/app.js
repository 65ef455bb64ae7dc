// nanochat4j's chat page: keeps the conversation in memory, streams replies from POST /chat/completions (nanochat's
// server-sent events, each piece tagged text / python / python_output) and renders them as they arrive. Everything
// the model or the user wrote goes into the page as text nodes, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const chat = $("chat"), input = $("input"), sendBtn = $("send"), stopBtn = $("stop"), statusLine = $("status");
const messages = [];          // {role: "user", content: string} | {role: "assistant", content: [{type, text}]}
let controller = null;        // AbortController of the reply being streamed
let apiKey = sessionStorage.getItem("nanochat4j-api-key") || "";

// ---- rendering -------------------------------------------------------------------------------------------------

/** Text with ``` fences as code blocks and `inline` code; paragraphs keep their line breaks (white-space: pre-wrap). */
function renderText(parent, text) {
  const pieces = text.split(/```/);
  pieces.forEach((piece, i) => {
    if (i % 2 === 1) {                                   // inside a fence: drop the language tag line
      const nl = piece.indexOf("\n");
      const code = nl >= 0 && /^[\w+-]*$/.test(piece.slice(0, nl)) ? piece.slice(nl + 1) : piece;
      const pre = document.createElement("pre");
      const c = document.createElement("code");
      c.textContent = code.replace(/\n$/, "");
      pre.appendChild(c);
      parent.appendChild(pre);
      return;
    }
    for (const raw of piece.split(/\n{2,}/)) {
      const para = raw.replace(/^\n+|\n+$/g, "");
      if (!para.trim()) continue;
      const p = document.createElement("p");
      para.split(/`([^`\n]+)`/).forEach((bit, j) => {
        if (j % 2 === 1) {
          const c = document.createElement("code");
          c.textContent = bit;
          p.appendChild(c);
          return;
        }
        bit.split(/\*\*([^*\n]+)\*\*/).forEach((run, k) => {   // **bold**
          if (!run) return;
          if (k % 2 === 1) {
            const b = document.createElement("strong");
            b.textContent = run;
            p.appendChild(b);
          } else {
            p.appendChild(document.createTextNode(run));
          }
        });
      });
      parent.appendChild(p);
    }
  });
}

/** A calculator call or its result, shown apart from the prose. */
function renderTool(parent, part) {
  const box = document.createElement("div");
  box.className = "tool" + (part.type === "python_output" ? " output" : "");
  const label = document.createElement("span");
  label.className = "label";
  label.textContent = part.type === "python" ? "calculator" : "result";
  const code = document.createElement("span");
  code.className = "expr";
  code.textContent = part.text;
  box.append(label, code);
  parent.appendChild(box);
}

function renderAssistant(bubble, parts) {
  bubble.replaceChildren();
  for (const part of parts) {
    if (part.type === "text") renderText(bubble, part.text);
    else renderTool(bubble, part);
  }
}

function addMessageView(role) {
  $("empty").hidden = true;
  const row = document.createElement("div");
  row.className = "msg " + role;
  const bubble = document.createElement("div");
  bubble.className = "bubble";
  row.appendChild(bubble);
  chat.appendChild(row);
  return {row, bubble};
}

function note(view, text) {
  const n = document.createElement("div");
  n.className = "note";
  n.textContent = text;
  view.row.appendChild(n);
}

function scrollToEnd() {
  chat.scrollTop = chat.scrollHeight;
}

// ---- banner, health, API key ---------------------------------------------------------------------------------

function showBanner(text, askKey) {
  $("banner-text").textContent = text;
  $("key-form").hidden = !askKey;
  $("banner").hidden = false;
}

function hideBanner() {
  $("banner").hidden = true;
}

$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  apiKey = $("api-key").value.trim();
  sessionStorage.setItem("nanochat4j-api-key", apiKey);
  hideBanner();
});

async function probe() {
  try {
    const r = await fetch("/health", {cache: "no-store"});
    const h = await r.json();
    statusLine.textContent = `${h.model} · ${h.available_workers}/${h.num_workers} workers free`;
  } catch (e) {
    showBanner("The server is not reachable. Is `nanochat4j serve` running?", false);
  }
}

// ---- a turn --------------------------------------------------------------------------------------------------

function setBusy(busy) {
  sendBtn.hidden = busy;
  stopBtn.hidden = !busy;
  input.disabled = false;
}

function clampNumber(el, lo, hi, fallback) {
  const v = Number(el.value);
  return Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : fallback;
}

/** Adds a user turn; clicking it later puts its text back in the input and drops it and everything after it. */
function addUser(text) {
  messages.push({role: "user", content: text});
  const view = addMessageView("user");
  view.bubble.textContent = text;
  view.bubble.title = "Click to edit";
  view.row.dataset.index = String(messages.length - 1);
  view.bubble.addEventListener("click", () => {
    if (controller) return;
    truncateFrom(Number(view.row.dataset.index));
    input.value = text;
    autosize();
    input.focus();
  });
}

/** Drops message i and every later one, in the conversation and on the page. */
function truncateFrom(i) {
  messages.length = i;
  for (const row of [...chat.querySelectorAll(".msg")]) {
    if (Number(row.dataset.index) >= i) row.remove();
  }
  if (messages.length === 0) $("empty").hidden = false;
}

/** A Regenerate button under the last reply only. */
function offerRegenerate(view) {
  for (const b of [...chat.querySelectorAll(".regenerate")]) b.remove();
  const b = document.createElement("button");
  b.type = "button";
  b.className = "regenerate";
  b.textContent = "↻ Regenerate";
  b.addEventListener("click", () => {
    if (controller) return;
    truncateFrom(Number(view.row.dataset.index));   // the reply (or a failed attempt) goes; the question stays
    reply();
  });
  view.row.appendChild(b);
}

async function send(text) {
  // A question whose reply failed is replaced by the new one: the roles must alternate.
  if (messages.length && messages[messages.length - 1].role === "user") truncateFrom(messages.length - 1);
  addUser(text);
  await reply();
}

/** Streams the assistant's answer to the conversation so far (which ends with a user turn). */
async function reply() {
  const parts = [];
  const view = addMessageView("assistant");
  view.row.classList.add("streaming");
  scrollToEnd();
  controller = new AbortController();
  setBusy(true);
  let finished = false, pending = false;
  const redraw = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; renderAssistant(view.bubble, parts); scrollToEnd(); });
  };
  try {
    const headers = {"Content-Type": "application/json"};
    if (apiKey) headers["Authorization"] = "Bearer " + apiKey;
    const body = {
      messages: messages.map((m) => ({role: m.role, content: m.content})),
      temperature: clampNumber($("temperature"), 0, 2, 0.8),
      top_k: Math.round(clampNumber($("topk"), 0, 200, 50)),
    };
    const r = await fetch("/chat/completions", {method: "POST", headers, body: JSON.stringify(body), signal: controller.signal});
    if (!r.ok) {
      let msg = `HTTP ${r.status}`;
      try { msg = (await r.json()).error.message; } catch (e) { /* not JSON */ }
      showBanner(msg, r.status === 401);
      throw new Error(msg);
    }
    hideBanner();
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buf += decoder.decode(value, {stream: true});
      let end;
      while ((end = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, end);
        buf = buf.slice(end + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = JSON.parse(line.slice(6));
          if (data.token !== undefined) {
            const type = data.part || "text";
            const last = parts[parts.length - 1];
            if (last && last.type === type) last.text += data.token;
            else parts.push({type, text: data.token});
            redraw();
          } else if (data.done) {
            finished = true;
            if (data.finish_reason === "length") note(view, "(reply cut at the token limit)");
            if (data.truncated_prompt_tokens > 0) {
              note(view, `(the conversation is longer than the model's context: its first ${data.truncated_prompt_tokens} tokens were left out)`);
            }
          } else if (data.error) {
            finished = true;
            note(view, "(" + data.error.message + ")");
          }
        }
      }
    }
    if (!finished) note(view, "(the reply ended early: the connection closed)");
  } catch (e) {
    if (e.name === "AbortError") note(view, "(stopped)");
    else if (!finished) note(view, "(error: " + e.message + ")");
  } finally {
    controller = null;
    view.row.classList.remove("streaming");
    renderAssistant(view.bubble, parts);
    if (parts.length === 0 && !finished) view.row.classList.add("failed");
    // The reply, even a stopped one, becomes part of the conversation the model sees next.
    if (parts.length > 0) {
      messages.push({role: "assistant", content: parts.map((p) => ({type: p.type, text: p.text}))});
      view.row.dataset.index = String(messages.length - 1);
      offerRegenerate(view);
    } else {
      view.row.dataset.index = String(messages.length);   // no turn of its own: a retry removes just this row
      offerRegenerate(view);
    }
    setBusy(false);
    input.focus();
    setTimeout(probe, 400);   // by then the server has seen a stopped stream's connection close
  }
}

function stop() {
  if (controller) controller.abort();
}

function newChat() {
  stop();
  messages.length = 0;
  for (const el of [...chat.querySelectorAll(".msg")]) el.remove();
  $("empty").hidden = false;
  input.value = "";
  autosize();
  input.focus();
}

function autosize() {
  input.style.height = "auto";
  input.style.height = Math.min(input.scrollHeight, 200) + "px";
}

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = input.value.trim();
  if (!text || controller) return;
  input.value = "";
  autosize();
  send(text);
});
input.addEventListener("input", autosize);
input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $("composer").requestSubmit();
  }
});
stopBtn.addEventListener("click", stop);
$("new-chat").addEventListener("click", newChat);
document.addEventListener("keydown", (e) => {
  if (e.ctrlKey && e.shiftKey && (e.key === "N" || e.key === "n")) {
    e.preventDefault();
    newChat();
  }
});
probe();
input.focus();
