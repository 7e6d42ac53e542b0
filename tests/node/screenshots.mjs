// Screenshots of each desk page for docs/screenshots/ (run by docs/screenshots/make.sh over 1M
// seeded calls): sign-in, find calls (laptop and phone), a call with its player and a review,
// an agent's day, the review queue, and a call as an analyst sees it.
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
const out = env('OUT');
const callId = env('CALL_ID');
const agent = env('AGENT');
const day = env('DAY');
const customer = env('CUSTOMER');
const zone = 'Asia/Kolkata';

const userDataDir = await mkdtemp(join(tmpdir(), 'calltrail-shots-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  timezoneId: zone,
  viewport: { width: 1280, height: 900 },
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run'],
});
const page = context.pages()[0] ?? (await context.newPage());
const shot = async (name, fullPage = true) => {
  await page.screenshot({ path: join(out, `${name}.png`), fullPage });
  console.log(`${name}.png ${page.url()}`);
};
const signIn = async (key) => {
  await page.goto(`${base}/`);
  await page.getByLabel('Your API key').fill(key);
  await Promise.all([page.waitForURL(/\/calls/), page.getByRole('button', { name: 'Sign in' }).click()]);
};
const q = (pairs) => new URLSearchParams(pairs).toString();
try {
  await page.goto(`${base}/`);
  await shot('sign-in', false);
  await signIn(env('REVIEWER_KEY'));
  await page.goto(`${base}/calls?${q({ customer, tz: zone })}`);
  await shot('find-calls');
  await page.goto(`${base}/calls/${callId}?${q({ tz: zone })}`);
  await page.getByLabel(/Issue: something was wrong/).check();
  await page.getByLabel(/^Note/).fill('The agent did not read the recording disclosure before asking for the account number.');
  await Promise.all([page.waitForURL(/#reviews$/), page.getByRole('button', { name: 'Record the review' }).click()]);
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot('call');
  await page.goto(`${base}/agents/${agent}/${day}?${q({ tz: zone })}`);
  await shot('agent-day');
  await page.goto(`${base}/queue?${q({ tz: zone })}`);
  await shot('review-queue', false);
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/calls?${q({ customer, tz: zone })}`);
  await page.locator('#results').scrollIntoViewIfNeeded();
  await shot('find-calls-phone', false);
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(`${base}/`);
  await signIn(env('ANALYST_KEY'));
  await page.goto(`${base}/calls/${callId}?${q({ tz: zone })}`);
  await shot('call-analyst', false);
} catch (e) {
  console.error(`FAIL ${e.message}`);
  process.exitCode = 1;
} finally {
  await context.close();
  await rm(userDataDir, { recursive: true, force: true });
}
