// Drives the chat page in a real browser (Debian's chromium through playwright-core); run by ChatPageBrowserTest.
// Usage: node chat-page.mjs <server url> <screenshot dir>
// Checks: the page loads only from the server; a typed message streams a reply that grows; Stop ends it and it
// stays ended; calculator calls/results and code blocks render apart from prose; New chat empties the view; on a
// phone-sized screen nothing overflows sideways. Saves chat-desktop.png and chat-phone.png.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import path from "node:path";

const [base, outDir] = process.argv.slice(2);
if (!base || !outDir) throw new Error("usage: node chat-page.mjs <server url> <screenshot dir>");
const origin = new URL(base).origin;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const foreign = [];
const consoleErrors = [];

async function openPage(viewport) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.on("request", (r) => { if (!r.url().startsWith(origin) && !r.url().startsWith("data:")) foreign.push(r.url()); });
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  await page.goto(base);
  await page.waitForSelector("#input");
  await page.waitForFunction(() => document.getElementById("status").textContent.includes("workers free"));
  assert.ok(!(await page.isVisible("#banner")), "no error banner on a healthy server");
  assert.ok(!(await page.isVisible("#stop")), "no Stop button before a reply");
  return page;
}

const assistantText = (page) => page.locator(".msg.assistant .bubble").last().innerText();

/** Types a message, waits until the reply has streamed in and grown, then presses Stop. */
async function chatAndStop(page, message) {
  await page.fill("#temperature", "0");          // greedy: the random test model then never ends on its own
  await page.fill("#input", message);
  await page.press("#input", "Enter");
  await page.waitForSelector(".msg.user .bubble");
  assert.equal(await page.locator(".msg.user .bubble").last().innerText(), message);
  await page.waitForFunction(() => {
    const b = [...document.querySelectorAll(".msg.assistant .bubble")].pop();
    return b && b.innerText.length > 0;
  });
  assert.ok(await page.isVisible("#stop"), "Stop shows while the reply streams");
  const first = (await assistantText(page)).length;
  await page.waitForFunction((n) => [...document.querySelectorAll(".msg.assistant .bubble")].pop().innerText.length > n + 20, first);
  const grown = (await assistantText(page)).length;
  await page.click("#stop");
  await page.waitForSelector(".msg.assistant .note");
  assert.match(await page.locator(".msg.assistant .note").last().innerText(), /stopped/);
  assert.ok(await page.isVisible("#send"), "Send is back after Stop");
  const stopped = await assistantText(page);
  await page.waitForTimeout(600);
  assert.equal(await assistantText(page), stopped, "nothing arrives after Stop");
  return { first, grown, stopped: stopped.length };
}

// ---- desktop ---------------------------------------------------------------------------------------------------
const page = await openPage({ width: 1280, height: 800 });
const desktop = await chatAndStop(page, "Hello! What is 12*7?");

// Regenerate replaces the last reply with a new stream; clicking a question puts it back in the input for editing.
assert.equal(await page.locator(".regenerate").count(), 1, "one Regenerate, under the last reply");
await page.click(".regenerate");
await page.waitForSelector("#stop:visible");
await page.waitForFunction(() => [...document.querySelectorAll(".msg.assistant .bubble")].pop().innerText.length > 10);
await page.click("#stop");
await page.waitForSelector("#send:visible");
assert.equal(await page.locator(".msg.assistant").count(), 1, "the old reply was replaced");
assert.equal(await page.locator(".msg.user").count(), 1);
await page.click(".msg.user .bubble");
assert.equal(await page.inputValue("#input"), "Hello! What is 12*7?");
assert.equal(await page.locator(".msg").count(), 0, "editing a question drops it and what follows");
await page.fill("#input", "");

// The server's replies come from a random model; the look of a calculator call, its result and a code block is
// checked on a scripted stream in nanochat's event format.
await page.route("**/chat/completions", (route) => route.fulfill({
  status: 200,
  headers: { "Content-Type": "text/event-stream" },
  body: [
    { token: "Let me compute that. ", part: "text" },
    { token: "12*7", part: "python" },
    { token: "84", part: "python_output" },
    { token: "So it is **84**. In Python:\n\n```python\nprint(12 * 7)\n```\nDone.", part: "text" },
  ].map((e) => `data: ${JSON.stringify({ ...e, gpu: 0 })}\n\n`).join("") + 'data: {"done": true, "finish_reason": "stop"}\n\n',
}));
await page.fill("#input", "And with the calculator?");
await page.press("#input", "Enter");
await page.waitForSelector(".tool.output");
const tools = await page.locator(".msg.assistant").last().locator(".tool").allInnerTexts();
assert.equal(tools.length, 2, "a call and a result: " + tools);
assert.match(tools[0], /calculator[\s\S]*12\*7/i);
assert.match(tools[1], /result[\s\S]*84/i);
assert.equal(await page.locator(".msg.assistant").last().locator("pre code").innerText(), "print(12 * 7)");
assert.equal(await page.locator(".msg.assistant").last().locator("strong").innerText(), "84");
assert.equal(await page.locator(".msg.user").count(), 1);
await page.unroute("**/chat/completions");
await page.screenshot({ path: path.join(outDir, "chat-desktop.png") });

await page.click("#new-chat");
assert.equal(await page.locator(".msg").count(), 0, "New chat empties the conversation");
assert.ok(await page.isVisible("#empty"));

// ---- phone -----------------------------------------------------------------------------------------------------
const phone = await openPage({ width: 390, height: 844 });
const phoneRun = await chatAndStop(phone, "Tell me something long, please, with many words in it.");
const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
assert.ok(overflow <= 0, "no sideways scrolling on a phone: " + overflow + " px too wide");
assert.ok(await phone.isVisible("#new-chat") && await phone.isVisible("#temperature"), "controls fit on a phone");
await phone.screenshot({ path: path.join(outDir, "chat-phone.png") });

await browser.close();
assert.deepEqual(foreign, [], "the page fetched from elsewhere");
assert.deepEqual(consoleErrors.filter((e) => !/aborted|AbortError/i.test(e)), [], "console errors");
console.log(JSON.stringify({ ok: true, desktop, phone: phoneRun }));
