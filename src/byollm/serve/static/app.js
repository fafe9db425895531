// byollm playground: talk to the model (completion or chat, streamed), then look inside.
//
// Read top to bottom: the API helpers (fetch, Server-Sent Events), generation (completion and
// chat, with the live next-token candidates from the stream's logprobs), then the "look
// inside" panel (tokens, candidates, attention maps) drawn from /v1/byollm/inspect.
// No framework, no build step: plain DOM and one <canvas> per attention map.
"use strict";

const $ = (id) => document.getElementById(id);
const TOP_K = 10; // candidates shown per step

const state = {
  mode: "completion", // or "chat"
  modelName: null,
  shape: null, // the model's n_layer, n_head, block_size, ... from /v1/models
  messages: [], // the chat so far: [{role, content}]
  controller: null, // AbortController of the request being generated
  steps: [], // the live generation: [{token, logprob, top: [{token, logprob}]}]
  inspectInput: null, // the {text} or {messages} the panel shows
  rawPromptTokens: 0, // the prompt's tokens, as the generation request counted them
  promptTokens: 0, // ... of those, the ones inspected (a text longer than the window is cut)
  report: null, // the last /v1/byollm/inspect answer
  selected: null, // the selected token position (or tokens.length: "what comes next")
  head: 0,
};

// ---- talking to the server -------------------------------------------------------------------
function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

class APIError extends Error {
  constructor(error) {
    super(error.message || "request failed");
    this.code = error.code;
  }
}

async function api(path, body) {
  const options = { method: body ? "POST" : "GET", headers: headers() };
  if (body) options.body = JSON.stringify(body);
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) throw new APIError(data.error || {});
  return data;
}

// Server-Sent Events over fetch: yield the JSON of each `data:` line until `data: [DONE]`.
async function* streamEvents(path, body, signal) {
  const response = await fetch(path, {
    method: "POST", headers: headers(), body: JSON.stringify(body), signal,
  });
  if (!response.ok) throw new APIError((await response.json()).error || {});
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new APIError(chunk.error);
        yield chunk;
      }
    }
  }
}

function samplingFields() {
  const number = (id) => parseFloat($(id).value);
  const body = {
    model: state.modelName,
    temperature: number("temperature"),
    top_p: number("top_p"),
    max_tokens: parseInt($("max_tokens").value, 10),
    stream: true,
    stream_options: { include_usage: true },
  };
  const topK = parseInt($("top_k").value, 10);
  if (topK > 0) body.top_k = topK;
  if (number("min_p") > 0) body.min_p = number("min_p");
  if (number("repetition_penalty") !== 1) body.repetition_penalty = number("repetition_penalty");
  if ($("seed").value !== "") body.seed = parseInt($("seed").value, 10);
  const stop = $("stop_text").value;
  if (stop) body.stop = [stop.replace(/\\n/g, "\n").replace(/\\t/g, "\t")];
  return body;
}

// ---- generation ------------------------------------------------------------------------------
function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function setBusy(busy) {
  $("run").disabled = busy;
  $("stop").disabled = !busy;
  document.body.dataset.state = busy ? "generating" : "idle";
}

// Run one streamed request; `onChunk(chunk)` sees every chunk. Returns the usage.
async function generate(path, body, onChunk) {
  state.controller = new AbortController();
  state.steps = [];
  setBusy(true);
  const started = performance.now();
  let usage = null;
  let finish = null;
  try {
    for await (const chunk of streamEvents(path, body, state.controller.signal)) {
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices[0];
      if (!choice) continue;
      if (choice.finish_reason) finish = choice.finish_reason;
      onChunk(choice);
      const seconds = (performance.now() - started) / 1000;
      setStatus(`generating… ${state.steps.length} tokens, ${(state.steps.length / seconds).toFixed(1)} tokens/s`);
    }
    const seconds = (performance.now() - started) / 1000;
    const tokens = usage ? usage.completion_tokens : state.steps.length;
    setStatus(`done: ${tokens} tokens in ${seconds.toFixed(2)} s (finish: ${finish})`);
  } catch (error) {
    if (error.name === "AbortError") setStatus("stopped");
    else throw error;
  } finally {
    state.controller = null;
    setBusy(false);
  }
  return usage;
}

// The stream's logprobs, as steps: the chosen token and the top candidates at that step.
function addSteps(entries) {
  for (const entry of entries) state.steps.push(entry);
  renderLive();
}

function completionSteps(logprobs) {
  if (!logprobs) return [];
  return logprobs.tokens.map((token, i) => ({
    token,
    logprob: logprobs.token_logprobs[i],
    top: Object.entries(logprobs.top_logprobs[i] || {}).map(([t, lp]) => ({ token: t, logprob: lp })),
  }));
}

function chatSteps(logprobs) {
  if (!logprobs || !logprobs.content) return [];
  return logprobs.content.map((e) => ({
    token: e.token,
    logprob: e.logprob,
    top: e.top_logprobs.map((t) => ({ token: t.token, logprob: t.logprob })),
  }));
}

async function runCompletion() {
  const prompt = $("prompt").value;
  const out = $("completion-output");
  out.replaceChildren(span("prompt", prompt), span("generated", ""));
  const generated = out.lastChild;
  let text = "";
  const body = { ...samplingFields(), prompt, logprobs: TOP_K };
  const usage = await generate("/v1/completions", body, (choice) => {
    text += choice.text;
    generated.textContent = text;
    addSteps(completionSteps(choice.logprobs));
  });
  await inspect({ text: prompt + text }, usage ? usage.prompt_tokens : 0);
}

async function runChat() {
  const input = $("chat-input").value;
  if (!input.trim()) return;
  $("chat-input").value = "";
  state.messages.push({ role: "user", content: input });
  let dropped = 0;
  for (;;) {
    renderMessages();
    const bubble = addMessage("assistant", "");
    let text = "";
    const body = {
      ...samplingFields(), messages: state.messages, logprobs: true, top_logprobs: TOP_K,
    };
    try {
      const usage = await generate("/v1/chat/completions", body, (choice) => {
        if (choice.delta && choice.delta.content) text += choice.delta.content;
        bubble.textContent = text;
        addSteps(chatSteps(choice.logprobs));
      });
      state.messages.push({ role: "assistant", content: text });
      if (dropped) setStatus($("status").textContent + ` — the oldest ${dropped} messages were dropped to fit the context window`);
      await inspect({ messages: state.messages }, usage ? usage.prompt_tokens : 0);
      return;
    } catch (error) {
      // The conversation outgrew the window: forget the oldest exchange and ask again.
      if (error.code !== "context_length_exceeded" || state.messages.length < 3) throw error;
      state.messages.splice(0, 2);
      dropped += 2;
    }
  }
}

function span(className, text) {
  const s = document.createElement("span");
  s.className = className;
  s.textContent = text;
  return s;
}

function addMessage(role, text) {
  const div = document.createElement("div");
  div.className = "message " + role;
  div.append(span("role", role), span("text", text));
  $("messages").append(div);
  $("messages").scrollTop = $("messages").scrollHeight;
  return div.lastChild;
}

function renderMessages() {
  $("messages").replaceChildren();
  for (const m of state.messages) addMessage(m.role, m.content);
}

// ---- look inside -----------------------------------------------------------------------------
// Inspect `input` ({text} or {messages}); the first `promptTokens` tokens were the prompt.
// `keepSelection` (another layer of the same text) keeps the selected token.
async function inspect(input, promptTokens, keepSelection = false) {
  const layer = parseInt($("layer").value || "0", 10);
  const report = await api("/v1/byollm/inspect", { ...input, model: state.modelName, top_k: TOP_K, layer });
  state.inspectInput = input;
  state.rawPromptTokens = promptTokens;
  state.report = report;
  state.promptTokens = Math.max(0, promptTokens - report.truncated);
  if (!keepSelection || state.selected === null || state.selected > report.tokens.length) {
    state.selected = report.tokens.length; // "what comes next" after the whole text
  }
  state.head = Math.min(state.head, state.report.n_head - 1);
  renderInside();
  document.body.dataset.state = "inspected";
}

const shown = (text) => text.replace(/ /g, "·").replace(/\n/g, "↵").replace(/\t/g, "→") || "∅";

function tokenColour(i) {
  const mode = $("token-colour").value;
  const token = state.report.tokens[i];
  if (mode === "prob") {
    if (token.prob === null) return "#eeeeee";
    return `hsl(${Math.round(120 * Math.sqrt(token.prob))}, 75%, 80%)`; // red: surprising, green: expected
  }
  if (mode === "attention") {
    const row = attentionRow();
    if (!row || i >= row.length) return "#f2f2f2";
    return `rgba(47, 95, 208, ${Math.sqrt(row[i]).toFixed(3)})`;
  }
  return `hsl(${(i * 67) % 360}, 70%, 88%)`;
}

// The weights of the selected token (its row of the selected head's map), or null.
function attentionRow() {
  const attention = state.report && state.report.attention;
  if (!attention) return null;
  const rows = attention.heads[state.head];
  const i = Math.min(state.selected, rows.length - 1);
  return rows[i];
}

function renderLive() {
  // While streaming: the generated tokens so far (ids come with the inspection afterwards).
  const box = $("tokens");
  box.replaceChildren();
  state.steps.forEach((step, i) => {
    const chip = tokenChip(step.token, "·", `hsl(${(i * 67) % 360}, 70%, 88%)`);
    chip.classList.add("generated");
    box.append(chip);
  });
  const last = state.steps[state.steps.length - 1];
  if (last) {
    $("step-label").textContent = `while generating token ${state.steps.length}`;
    renderCandidates(last.top.map((t) => ({ text: t.token, id: null, prob: Math.exp(t.logprob) })), last.token);
  }
}

function tokenChip(text, id, colour) {
  const chip = document.createElement("span");
  chip.className = "token";
  chip.style.background = colour;
  chip.append(span("text", shown(text)), span("id", String(id)));
  return chip;
}

function renderInside() {
  renderTokens();
  renderSelection();
  renderHeads();
}

function renderTokens() {
  const box = $("tokens");
  box.replaceChildren();
  state.report.tokens.forEach((token, i) => {
    const chip = tokenChip(token.text, token.id, tokenColour(i));
    if (i >= state.promptTokens) chip.classList.add("generated");
    if (i === state.selected) chip.classList.add("selected");
    const p = token.prob === null ? "the first token: nothing before it to predict it from" : `p = ${token.prob}`;
    chip.title = `position ${i}, id ${token.id}: ${p}`;
    chip.addEventListener("click", () => select(i));
    box.append(chip);
  });
  const next = tokenChip("⋯", "next", "#ffffff");
  next.title = "what the model would write next";
  if (state.selected === state.report.tokens.length) next.classList.add("selected");
  next.addEventListener("click", () => select(state.report.tokens.length));
  box.append(next);
}

function select(i) {
  state.selected = i;
  renderTokens();
  renderSelection();
}

// Candidates for the selected token: what the model predicted after the token before it.
function renderSelection() {
  const tokens = state.report.tokens;
  const i = state.selected;
  if (i === 0) {
    $("step-label").textContent = "— the first token has nothing before it";
    $("candidates").replaceChildren();
  } else {
    const predictions = state.report.predictions[i - 1] || [];
    const chosen = i < tokens.length ? tokens[i] : null;
    $("step-label").textContent = chosen
      ? `for position ${i}, after “${shown(tokens[i - 1].text)}” (chosen: “${shown(chosen.text)}”, p = ${chosen.prob})`
      : "for the next token, after the whole text";
    renderCandidates(predictions, chosen ? chosen.text : null, chosen ? chosen.id : null);
  }
  drawAttention();
}

function renderCandidates(candidates, chosenText, chosenId = null) {
  const box = $("candidates");
  box.replaceChildren();
  for (const c of candidates) {
    const row = document.createElement("div");
    row.className = "bar-row";
    const isChosen = chosenId !== null ? c.id === chosenId : c.text === chosenText;
    if (isChosen) row.classList.add("chosen");
    const label = span("label", shown(c.text) + (c.id === null ? "" : `  #${c.id}`));
    const track = document.createElement("div");
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = `${(100 * c.prob).toFixed(1)}%`;
    track.append(bar);
    row.append(label, track, span("value", `${(100 * c.prob).toFixed(1)}%`));
    box.append(row);
  }
}

// ---- attention maps --------------------------------------------------------------------------
// A map is lower-triangular: row i holds how much token i attends to tokens 0..i (sums to 1).
// Colour grows with the square root of the weight, so that small weights stay visible.
function drawMap(canvas, rows, selectedRow) {
  const T = rows.length;
  const image = new ImageData(T, T);
  for (let i = 0; i < T; i++) {
    for (let j = 0; j < T; j++) {
      const w = j <= i ? Math.sqrt(rows[i][j]) : 0;
      const o = 4 * (i * T + j);
      image.data[o] = Math.round(255 - 208 * w);
      image.data[o + 1] = Math.round(255 - 160 * w);
      image.data[o + 2] = Math.round(255 - 47 * w);
      image.data[o + 3] = j <= i ? 255 : 40;
    }
  }
  const pixels = document.createElement("canvas");
  pixels.width = pixels.height = T;
  pixels.getContext("2d").putImageData(image, 0, 0);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(pixels, 0, 0, canvas.width, canvas.height);
  if (selectedRow !== null && selectedRow < T) {
    const cell = canvas.height / T;
    ctx.strokeStyle = "#d0342c";
    ctx.lineWidth = Math.max(1, Math.min(2, cell / 2));
    ctx.strokeRect(0, selectedRow * cell, canvas.width, cell);
  }
}

function renderHeads() {
  const box = $("heads");
  box.replaceChildren();
  const attention = state.report.attention;
  if (!attention) return;
  attention.heads.forEach((rows, h) => {
    const figure = document.createElement("figure");
    if (h === state.head) figure.classList.add("selected");
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 72;
    drawMap(canvas, rows, null);
    const caption = document.createElement("figcaption");
    caption.textContent = `L${attention.layer} H${h}`;
    figure.append(canvas, caption);
    figure.addEventListener("click", () => {
      state.head = h;
      renderHeads();
      renderTokens();
      drawAttention();
    });
    box.append(figure);
  });
}

function drawAttention() {
  const attention = state.report && state.report.attention;
  if (!attention) return;
  const rows = attention.heads[state.head];
  const selectedRow = Math.min(state.selected, rows.length - 1);
  drawMap($("attention"), rows, selectedRow);
}

function hoverAttention(event) {
  const attention = state.report && state.report.attention;
  if (!attention) return;
  const canvas = $("attention");
  const rect = canvas.getBoundingClientRect();
  const T = state.report.tokens.length;
  const i = Math.floor(((event.clientY - rect.top) / rect.height) * T);
  const j = Math.floor(((event.clientX - rect.left) / rect.width) * T);
  if (i < 0 || j < 0 || i >= T || j >= T) return;
  const tokens = state.report.tokens;
  const w = j <= i ? attention.heads[state.head][i][j] : 0;
  $("attention-hover").textContent =
    `“${shown(tokens[i].text)}” (${i}) → “${shown(tokens[j].text)}” (${j}): ${w.toFixed(3)}`;
  return i;
}

// ---- wiring ----------------------------------------------------------------------------------
function setMode(mode) {
  state.mode = mode;
  $("tab-completion").setAttribute("aria-selected", String(mode === "completion"));
  $("tab-chat").setAttribute("aria-selected", String(mode === "chat"));
  $("completion-panel").hidden = mode !== "completion";
  $("chat-panel").hidden = mode !== "chat";
  $("run").textContent = mode === "chat" ? "Send" : "Generate";
}

async function run() {
  try {
    if (state.mode === "chat") await runChat();
    else await runCompletion();
  } catch (error) {
    setStatus(error.message, true);
    setBusy(false);
  }
}

async function connect() {
  try {
    const models = await api("/v1/models");
    const card = models.data[0];
    state.modelName = card.id;
    state.shape = card.byollm;
    const s = card.byollm;
    $("model-info").textContent = `${card.id}: ${s.n_layer} layers × ${s.n_head} heads, ` +
      `${s.n_embd} wide, context ${s.block_size} tokens, vocabulary ${s.vocab_size}, ${s.chat_mode} chat`;
    $("layer").replaceChildren(...Array.from({ length: s.n_layer }, (_, i) => new Option(`${i}`, `${i}`)));
    document.body.dataset.state = "idle";
  } catch (error) {
    $("model-info").textContent = "cannot reach the model: " + error.message;
  }
}

$("tab-completion").addEventListener("click", () => setMode("completion"));
$("tab-chat").addEventListener("click", () => setMode("chat"));
$("run").addEventListener("click", run);
$("stop").addEventListener("click", () => state.controller && state.controller.abort());
$("reset").addEventListener("click", () => {
  state.messages = [];
  state.report = null;
  for (const id of ["messages", "completion-output", "tokens", "candidates", "heads"]) $(id).replaceChildren();
  $("attention").getContext("2d").clearRect(0, 0, $("attention").width, $("attention").height);
  $("step-label").textContent = "";
  setStatus("");
});
for (const id of ["prompt", "chat-input"]) {
  $(id).addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey || id === "chat-input") && !e.shiftKey) {
      e.preventDefault();
      run();
    }
  });
}
$("token-colour").addEventListener("change", () => state.report && renderTokens());
$("layer").addEventListener("change", () => {
  if (state.inspectInput) inspect(state.inspectInput, state.rawPromptTokens, true).catch((e) => setStatus(e.message, true));
});
$("attention").addEventListener("mousemove", hoverAttention);
$("attention").addEventListener("click", (event) => {
  const i = hoverAttention(event);
  if (i !== undefined) select(i);
});
$("api-key").addEventListener("change", connect);
setMode("completion");
connect();
