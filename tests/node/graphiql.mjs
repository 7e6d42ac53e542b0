// GraphiQL as a person uses it, in headless Chromium with no way out but to calltrail:
// the page renders, the Docs list Query.calls, a typed query runs with a header from the
// Headers tab and shows a stored call.
//
//   CALLTRAIL_URL=http://127.0.0.1:8080 node tests/node/graphiql.mjs
//
// Needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium chromium-driver).
// Posts a fixture call to the server first. SCREENSHOT=path.png keeps a picture of the end.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const base = process.env.CALLTRAIL_URL;
if (!base) {
  console.error('set CALLTRAIL_URL to a running calltrail, e.g. http://127.0.0.1:8080');
  process.exit(2);
}
const origin = new URL(base).origin;
const CALL_ID = 'call_8F2kQ1xLmA';
const QUERY = '{ call(callId: "call_8F2kQ1xLmA") { callId customerName durationSeconds } }';

const fixture = await readFile(
  new URL('../fixtures/doubletick/events/call-ended-incoming-recorded.json', import.meta.url),
);
const seeded = await fetch(new URL('/webhooks/doubletick', origin), {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: fixture,
});
const receipt = await seeded.json();
if (seeded.status !== 200 || receipt.callId !== CALL_ID) {
  console.error(`FAIL seeding the call: ${seeded.status} ${JSON.stringify(receipt)}`);
  process.exit(1);
}

const userDataDir = await mkdtemp(join(tmpdir(), 'calltrail-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const problems = [];
const blocked = [];
const graphqlRequests = [];
try {
  // Offline: anything not sent to calltrail fails, as it would without internet.
  await context.route('**/*', (route) => {
    const requested = route.request().url();
    if (new URL(requested).origin === origin) return route.continue();
    blocked.push(requested);
    return route.abort('internetdisconnected');
  });
  const page = context.pages()[0] ?? (await context.newPage());
  await page.addInitScript(() => {
    window.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (event) => {
      window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI} ${event.sample}`);
    });
  });
  page.on('console', (message) => {
    if (message.type() === 'error' || /Content.Security.Policy/i.test(message.text())) {
      problems.push(`console ${message.type()}: ${message.text()}`);
    }
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('request', (request) => {
    if (request.method() === 'POST' && new URL(request.url()).pathname === '/graphql') {
      graphqlRequests.push({ headers: request.headers(), body: request.postData() ?? '' });
    }
  });

  const response = await page.goto(new URL('/graphql', origin).toString());
  const csp = response?.headers()['content-security-policy'] ?? '';
  if (!csp.includes("default-src 'self'")) problems.push(`the page's CSP is "${csp}"`);
  await page.locator('.graphiql-container').waitFor({ timeout: 30_000 });
  await page.locator('.graphiql-query-editor .CodeMirror').waitFor();
  console.log('GraphiQL rendered');

  // A dialog (it adds a <style> element, which the CSP must let through).
  await page.getByRole('button', { name: 'Open settings dialog' }).click();
  await page.getByRole('dialog').waitFor();
  await page.keyboard.press('Escape');
  await page.getByRole('dialog').waitFor({ state: 'detached' });

  // Docs: the schema came from introspection; Query lists `calls`.
  await page.getByRole('button', { name: /Documentation Explorer/ }).click();
  const docs = page.locator('.graphiql-doc-explorer');
  await docs.locator('.graphiql-doc-explorer-type-name', { hasText: /^Query$/ }).first().click();
  await docs
    .locator('.graphiql-doc-explorer-field-name', { hasText: /^calls$/ })
    .first()
    .waitFor({ timeout: 15_000 });
  console.log('Docs: Query.calls listed');

  // A header as a person pastes an API key, in the Headers tab.
  await page.getByRole('button', { name: /^Headers$/ }).click();
  const headers = page.locator('.graphiql-editor-tool .CodeMirror').last();
  await headers.click();
  await page.keyboard.type('{"X-Calltrail-Check": "from-the-headers-tab"');

  // Type the query over the default one, run it, read the result pane.
  await page.locator('.graphiql-query-editor .CodeMirror').click();
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  await page.keyboard.type(QUERY);
  const typed = await page.evaluate(
    () => document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.getValue(),
  );
  if (typed.replace(/\s+/g, ' ').trim() !== QUERY) problems.push(`the editor holds ${typed}`);
  await page.locator('.graphiql-execute-button').click();
  const result = page.locator('.result-window');
  await result.getByText(`"${CALL_ID}"`).waitFor({ timeout: 15_000 });
  const shown = await page.evaluate(
    () => document.querySelector('.result-window .CodeMirror').CodeMirror.getValue(),
  );
  const data = JSON.parse(shown);
  if (data?.data?.call?.callId !== CALL_ID || data.errors) {
    problems.push(`the result pane shows ${shown}`);
  } else {
    console.log(`result pane: ${JSON.stringify(data.data.call)}`);
  }
  const sent = graphqlRequests.find((r) => r.body.includes(CALL_ID));
  if (sent?.headers['x-calltrail-check'] !== 'from-the-headers-tab') {
    problems.push(`the query was sent without the Headers tab's header: ${JSON.stringify(sent?.headers)}`);
  }
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT });
  for (const violation of await page.evaluate(() => window.cspViolations)) {
    problems.push(`Content-Security-Policy refused ${violation}`);
  }
} catch (error) {
  problems.push(`${error.name}: ${error.message}`);
} finally {
  await context.close();
  await rm(userDataDir, { recursive: true, force: true });
}
for (const url of blocked) problems.push(`requested from outside calltrail: ${url}`);
for (const problem of problems) console.error(`FAIL ${problem}`);
if (problems.length === 0) console.log('GraphiQL works offline');
process.exit(problems.length === 0 ? 0 : 1);
