// An archived recording as a reviewer's browser plays it: headless Chromium loads
// /recordings/<callId> into an <audio> element, plays it, seeks into the middle, and goes on
// playing from there (the server answers the element's Range requests).
//
//   CALLTRAIL_URL=http://127.0.0.1:8080 CALL_ID=... SECONDS=4 node tests/node/audio.mjs
//
// Needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium chromium-driver).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const base = process.env.CALLTRAIL_URL;
const callId = process.env.CALL_ID;
const seconds = Number(process.env.SECONDS || '4');
if (!base || !callId) {
  console.error('set CALLTRAIL_URL and CALL_ID');
  process.exit(2);
}
const src = new URL(`/recordings/${encodeURIComponent(callId)}`, base).href;
const userDataDir = await mkdtemp(join(tmpdir(), 'calltrail-audio-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--autoplay-policy=no-user-gesture-required', '--no-sandbox'],
});
let failed = false;
try {
  const page = await context.newPage();
  const result = await page.evaluate(async ({ src, target }) => {
    const audio = document.createElement('audio');
    audio.preload = 'auto';
    audio.muted = true;
    document.body.appendChild(audio);
    const once = (event) =>
      new Promise((resolve, reject) => {
        audio.addEventListener(event, resolve, { once: true });
        audio.addEventListener(
          'error',
          () => reject(new Error(`media error ${audio.error && audio.error.code}`)),
          { once: true },
        );
      });
    const loaded = once('loadedmetadata');
    audio.src = src;
    await loaded;
    const duration = audio.duration;
    await audio.play();
    await new Promise((r) => setTimeout(r, 700));
    const played = audio.currentTime;
    const seeked = once('seeked');
    audio.currentTime = target;
    await seeked;
    const at = audio.currentTime;
    await new Promise((r) => setTimeout(r, 400));
    return { duration, played, at, after: audio.currentTime, paused: audio.paused };
  }, { src, target: seconds * 0.75 });
  console.log(JSON.stringify(result));
  const problems = [];
  if (Math.abs(result.duration - seconds) > 0.1) problems.push(`duration ${result.duration}, not ${seconds}`);
  if (!(result.played > 0.1)) problems.push(`did not play: at ${result.played} s after 0.7 s`);
  if (Math.abs(result.at - seconds * 0.75) > 0.05) problems.push(`seeked to ${result.at}, not ${seconds * 0.75}`);
  if (!(result.after > result.at) || result.paused) problems.push(`did not go on after seeking: ${result.after}`);
  if (problems.length) {
    console.error(`FAIL ${problems.join('; ')}`);
    failed = true;
  } else {
    console.log('audio plays and seeks');
  }
} catch (e) {
  console.error(`FAIL ${e}`);
  failed = true;
} finally {
  await context.close();
  await rm(userDataDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
