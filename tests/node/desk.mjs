// The reviewer desk as its users meet it, in headless Chromium with no way out but to
// calltrail: sign in, find a customer's call by a differently formatted number, open it, play
// and seek its recording, record a review that then shows on the call and leaves the queue,
// sign out; an analyst sees no name, number or player; a scoped key cannot open a call outside
// its scope by URL.
//
//   CALLTRAIL_URL=http://127.0.0.1:8080 REVIEWER_KEY=ct_... ANALYST_KEY=ct_... SCOPED_KEY=ct_... \
//   CALL_ID=... OUTSIDE_CALL_ID=... NUMBER='+91 98111-22233' NAME='Meera Iyer' SECONDS=4 \
//   node tests/node/desk.mjs
//
// Needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium chromium-driver).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`set ${name}`);
    process.exit(2);
  }
  return value;
};
const base = env('CALLTRAIL_URL');
const origin = new URL(base).origin;
const reviewerKey = env('REVIEWER_KEY');
const analystKey = env('ANALYST_KEY');
const scopedKey = env('SCOPED_KEY');
const callId = env('CALL_ID');
const outsideCallId = env('OUTSIDE_CALL_ID');
const number = env('NUMBER');
const customerName = env('NAME');
const seconds = Number(process.env.SECONDS || '4');
const digits = number.replace(/\D/g, '');

const userDataDir = await mkdtemp(join(tmpdir(), 'calltrail-desk-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  timezoneId: 'Asia/Kolkata',
  args: ['--no-sandbox', '--disable-gpu', '--autoplay-policy=no-user-gesture-required', '--no-first-run'],
});
const problems = [];
const blocked = [];
const step = (text) => console.log(`ok ${text}`);
const fail = (text) => {
  throw new Error(text);
};
try {
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
      window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
    });
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (/Content.Security.Policy/i.test(message.text())) problems.push(`console: ${message.text()}`);
  });
  const csp = async () => {
    const violations = await page.evaluate(() => window.cspViolations);
    if (violations.length) problems.push(`CSP violations on ${page.url()}: ${violations.join('; ')}`);
  };
  const signIn = async (key) => {
    await page.goto(`${base}/`);
    await page.getByLabel('Your API key').fill(key);
    await Promise.all([page.waitForURL(/\/calls/), page.getByRole('button', { name: 'Sign in' }).click()]);
    // The desk's script reads the page in the browser's time zone.
    await page.waitForURL(/tz=Asia%2F(Kolkata|Calcutta)/);
    await csp();
  };
  const signOut = async () => {
    await Promise.all([page.waitForURL(`${base}/`), page.getByRole('button', { name: 'Sign out' }).click()]);
    await page.goto(`${base}/calls`);
    if (!(await page.getByLabel('Your API key').isVisible())) fail('signed out, /calls did not ask to sign in');
    if (!page.url().includes('next=')) fail(`signed out, /calls went to ${page.url()}`);
  };

  // The reviewer: keyboard first, then the search.
  await signIn(reviewerKey);
  await page.keyboard.press('Tab');
  const first = await page.evaluate(() => document.activeElement && document.activeElement.textContent);
  if (!/Skip to the page/.test(first || '')) fail(`the first Tab stop is ${first}`);
  step('signed in; times in the browser\'s zone; the first Tab stop skips to the page');

  await page.getByLabel('Customer number').fill(number);
  await Promise.all([page.waitForURL(/customer=/), page.getByRole('button', { name: 'Find calls' }).click()]);
  const results = page.getByRole('table', { name: 'Matching calls' });
  if (!(await results.getByText(customerName).isVisible())) fail(`no ${customerName} for ${number}`);
  if (!(await page.getByText('1 call matches').isVisible())) fail('not exactly one match');
  await csp();
  step(`found ${customerName} by ${number} (stored as ${digits})`);

  await Promise.all([page.waitForURL(new RegExp(`/calls/${callId}`)), results.getByRole('link').first().click()]);
  if (!(await page.getByRole('heading', { level: 1 }).textContent()).includes(callId)) fail('not the call page');
  const heard = await page.evaluate(async (target) => {
    const audio = document.querySelector('audio');
    if (!audio) return { error: 'no audio element' };
    const once = (event) =>
      new Promise((resolve, reject) => {
        audio.addEventListener(event, resolve, { once: true });
        audio.addEventListener('error', () => reject(new Error(`media error ${audio.error && audio.error.code}`)), { once: true });
      });
    if (audio.readyState < 1) await once('loadedmetadata');
    audio.muted = true;
    const duration = audio.duration;
    await audio.play();
    await new Promise((r) => setTimeout(r, 700));
    const played = audio.currentTime;
    const seeked = once('seeked');
    audio.currentTime = target;
    await seeked;
    const at = audio.currentTime;
    await new Promise((r) => setTimeout(r, 400));
    return { duration, played, at, after: audio.currentTime, paused: audio.paused, src: audio.currentSrc, preload: audio.preload };
  }, seconds * 0.75);
  console.log(JSON.stringify(heard));
  if (heard.error) fail(heard.error);
  if (Math.abs(heard.duration - seconds) > 0.3) fail(`duration ${heard.duration}, not ${seconds}`);
  if (!(heard.played > 0.1)) fail(`did not play: at ${heard.played} s after 0.7 s`);
  if (Math.abs(heard.at - seconds * 0.75) > 0.1) fail(`seeked to ${heard.at}`);
  if (!(heard.after > heard.at) || heard.paused) fail(`did not go on after seeking: ${heard.after}`);
  if (!heard.src.endsWith(`/recordings/${callId}`) || heard.preload !== 'metadata') fail(`player ${heard.src} ${heard.preload}`);
  await csp();
  step('the recording plays and seeks from /recordings with the session cookie');

  await page.getByLabel(/Issue: something was wrong/).check();
  await page.getByLabel(/^Note/).fill('Disclosure skipped at 0:40');
  await Promise.all([page.waitForURL(/#reviews$/), page.getByRole('button', { name: 'Record the review' }).click()]);
  if (!(await page.getByText('Disclosure skipped at 0:40').isVisible())) fail('the review is not on the call');
  step('the review shows on the call');

  await page.getByRole('link', { name: 'Review queue' }).click();
  await page.waitForURL(/\/queue/);
  if ((await page.locator(`a[href^="/calls/${callId}"]`).count()) !== 0) fail('the reviewed call is still queued');
  await csp();
  step('the reviewed call left the queue');
  await signOut();
  step('sign-out ended the session');

  // The analyst.
  await signIn(analystKey);
  if (await page.getByLabel('Customer number').count()) fail('an analyst is offered the customer number');
  await page.goto(`${base}/calls/${callId}?tz=Asia%2FKolkata`);
  const text = await page.locator('body').innerText();
  for (const secret of [customerName, digits, number]) {
    if (text.includes(secret)) fail(`an analyst sees ${secret}`);
  }
  if (await page.locator('audio').count()) fail('an analyst has a player');
  await csp();
  step('an analyst sees no name, number or player');
  await signOut();

  // The scoped key.
  await signIn(scopedKey);
  const outside = await page.goto(`${base}/calls/${outsideCallId}`);
  if (outside.status() !== 404) fail(`a call outside the scope answered ${outside.status()}`);
  if (!(await page.getByRole('heading', { name: 'Not found' }).isVisible())) fail('no Not found page');
  step('a scoped key cannot open a call outside its scope by URL');
  await signOut();

  if (blocked.length) problems.push(`requests outside calltrail: ${blocked.join(', ')}`);
  if (problems.length) fail(problems.join('\n'));
  console.log('the desk works in Chromium');
} catch (e) {
  console.error(`FAIL ${e.message}`);
  const open = context.pages()[0];
  if (open) console.error(`at ${open.url()}: ${(await open.locator('body').innerText().catch(() => '')).slice(0, 2000)}`);
  process.exitCode = 1;
} finally {
  await context.close();
  await rm(userDataDir, { recursive: true, force: true });
}
