// Drives a real headless Chromium (the system's, through playwright-core) for
// tests/integration/test_browser.py:
//
//   node drive.mjs --chromium /usr/bin/chromium < steps.json
//
// Each step {"url", "call", "args"} opens url in a new page and awaits window[call](...args)
// there. Prints one JSON array: per step {"result", "console", "errors"} (what the function
// resolved to, the page's console messages and uncaught errors). Exits 1 if a step could not run.
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { chromium: { type: "string" } } });
const steps = JSON.parse(readFileSync(0, "utf8"));
// As root (CI), Chromium runs only without its sandbox.
const browser = await chromium.launch({
  executablePath: values.chromium, headless: true, args: ["--no-sandbox"],
});
const report = [];
let failed = false;
try {
  const context = await browser.newContext();
  for (const step of steps) {
    const page = await context.newPage();
    const console_ = [];
    const errors = [];
    page.on("console", (message) => console_.push(`${message.type()}: ${message.text()}`));
    page.on("pageerror", (error) => errors.push(String(error)));
    try {
      await page.goto(step.url, { waitUntil: "load" });
      const result = await page.evaluate(([call, args]) => window[call](...args), [step.call, step.args]);
      report.push({ result, console: console_, errors });
    } catch (error) {
      failed = true;
      report.push({ result: null, console: console_, errors: [...errors, String(error)] });
    }
    await page.close();
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(report));
process.exit(failed ? 1 : 0);
