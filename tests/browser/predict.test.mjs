// Drives headless Chromium through flowrun's web pages against a running
// `flowrun serve`, whose URL is in FLOWRUN_URL. The store behind it must
// hold a deployed customer_satisfaction model (tests/web_browser.rs runs
// the deployment pipeline on the shipped sample first).
//
// Run: FLOWRUN_URL=http://127.0.0.1:8080 node --test tests/browser/predict.test.mjs
// Screenshots go to SCREENSHOT_DIR, by default docs/screenshots.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const base = process.env.FLOWRUN_URL;
if (!base) {
  throw new Error('FLOWRUN_URL is not set; give the URL of a running `flowrun serve`');
}
const scriptDir = dirname(fileURLToPath(import.meta.url));
const shots = resolve(process.env.SCREENSHOT_DIR ?? join(scriptDir, '..', '..', 'docs', 'screenshots'));

// Chromium makes background connections (updates, sync, field trials) that
// this machine refuses; these flags turn them off.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let profile;
let context;
let page;
const problems = [];

before(async () => {
  mkdirSync(shots, { recursive: true });
  profile = mkdtempSync(join(tmpdir(), 'flowrun-chromium-'));
  // A persistent context is how Playwright takes a --user-data-dir: here a
  // new, empty one per run.
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
  });
  page = context.pages()[0] ?? (await context.newPage());
  // Chromium logs "Failed to load resource" for the pages this test loads
  // with a 404 or 422 status on purpose. Stylesheets and icons that fail
  // are caught by their status instead.
  page.on('console', (message) => {
    const expected = message.text().startsWith('Failed to load resource: the server responded');
    if (message.type() === 'error' && !expected) problems.push(`console: ${message.text()}`);
  });
  page.on('response', (response) => {
    const document = response.request().resourceType() === 'document';
    if (!document && response.status() >= 400) {
      problems.push(`${response.status()} for ${response.url()}`);
    }
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
});

after(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/** Reads every field of the predict form as an /invocations record. */
async function formRecord() {
  return page.$$eval('form.predict input[name], form.predict select[name]', (fields) =>
    Object.fromEntries(
      fields.map((field) => [
        field.name,
        field.tagName === 'SELECT' ? field.value : Number(field.value),
      ]),
    ),
  );
}

/** Sends one record to /invocations and returns the prediction and version. */
async function invoke(record) {
  const response = await fetch(`${base}/invocations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ dataframe_records: [record] }),
  });
  assert.equal(response.status, 200, await response.clone().text());
  const body = await response.json();
  return { prediction: body.predictions[0], version: response.headers.get('x-flowrun-model-version') };
}

/** Returns the error message shown beside a field, or null. */
async function fieldError(name) {
  const error = page.locator(`#e-${name}`);
  return (await error.count()) ? (await error.textContent()).trim() : null;
}

test('predict form has labelled, validated inputs', async () => {
  const response = await page.goto(`${base}/`);
  assert.equal(response.status(), 200);
  assert.match(await page.locator('h1').textContent(), /Predict review score/);
  const price = page.locator('input[name="price"]');
  assert.equal(await price.getAttribute('type'), 'number');
  assert.equal(await price.getAttribute('required'), '');
  assert.equal(await price.getAttribute('min'), '0');
  assert.ok(Number(await price.getAttribute('max')) > 100);
  assert.equal(await price.getAttribute('step'), 'any');
  assert.match(await page.locator('label[for="f-price"]').textContent(), /Item price \(BRL\)/);
  const states = await page.locator('select[name="customer_state"] option').count();
  assert.ok(states > 5, `only ${states} states listed`);
  // The browser refuses a negative price before anything is sent.
  await price.fill('-5');
  assert.equal(await price.evaluate((input) => input.validity.rangeUnderflow), true);
  await price.fill('');
  assert.equal(await price.evaluate((input) => input.validity.valueMissing), true);
  assert.equal(await page.locator('form.predict').evaluate((form) => form.checkValidity()), false);
});

test('prediction equals /invocations for the same row', async () => {
  await page.goto(`${base}/`);
  await page.fill('input[name="price"]', '149.9');
  await page.fill('input[name="freight_value"]', '32.5');
  await page.selectOption('select[name="customer_state"]', 'RJ');
  await page.selectOption('select[name="payment_type"]', 'boleto');
  await Promise.all([page.waitForURL(/\?/), page.click('button[type="submit"]')]);

  const score = page.locator('#prediction');
  const exact = Number(await score.getAttribute('data-prediction'));
  const text = (await score.textContent()).trim();
  assert.match(text, /^-?\d+\.\d$/);
  assert.ok(Math.abs(Number(text) - exact) <= 0.05 + 1e-9, `${text} is not ${exact} to one decimal`);

  const record = await formRecord();
  assert.equal(record.price, 149.9);
  assert.equal(record.customer_state, 'RJ');
  const api = await invoke(record);
  assert.equal(exact, api.prediction);
  assert.equal((await page.locator('#model-version').textContent()).trim(), api.version);
  await page.screenshot({ path: join(shots, 'predict.png'), fullPage: false });
  await page.locator('details', { hasText: 'How the inputs compare' }).locator('summary').click();
  const compared = page.locator('table.compare tbody tr');
  assert.equal(await compared.count(), await page.locator('form.predict .field').count());
  assert.ok(await compared.first().isVisible());
});

test('bad values come back with messages', async () => {
  // Empty, non-numeric, negative and absurd values, sent past the
  // browser's own checks as a hand-made link would be.
  const query = new URLSearchParams({ price: '', freight_value: 'abc', payment_value: '-3', product_weight_g: '1e12' });
  const response = await page.goto(`${base}/?${query}`);
  assert.equal(response.status(), 422);
  assert.match(await page.locator('.problem').textContent(), /inputs need a change/);
  assert.match(await fieldError('price'), /Enter a value/);
  assert.match(await fieldError('freight_value'), /“abc” is not a number/);
  assert.match(await fieldError('payment_value'), /Enter 0 or more/);
  assert.match(await fieldError('product_weight_g'), /implausible/);
  assert.equal(await page.inputValue('input[name="freight_value"]'), 'abc');
  assert.equal(await page.inputValue('input[name="payment_value"]'), '-3');
  assert.equal(await page.locator('#prediction').count(), 0);

  // The same through the form with the browser's checks switched off.
  await page.goto(`${base}/`);
  await page.locator('form.predict').evaluate((form) => { form.noValidate = true; });
  await page.fill('input[name="price"]', '-1');
  await Promise.all([page.waitForURL(/\?/), page.click('button[type="submit"]')]);
  assert.match(await fieldError('price'), /Enter 0 or more/);
  assert.equal(await fieldError('freight_value'), null);
  assert.equal(await page.inputValue('input[name="price"]'), '-1');
});

test('models page compares versions', async () => {
  const response = await page.goto(`${base}/models`);
  assert.equal(response.status(), 200);
  const rows = page.locator('table.versions tbody tr');
  assert.ok((await rows.count()) >= 1);
  assert.match(await page.locator('table.versions').textContent(), /production/);
  assert.ok((await page.locator('svg.chart').count()) >= 2, 'comparison and importance charts');
  assert.ok((await page.locator('#importance svg rect.bar').count()) >= 10);
  await page.screenshot({ path: join(shots, 'models.png'), fullPage: true });
});

test('runs page and a run page with its DAG', async () => {
  const response = await page.goto(`${base}/runs`);
  assert.equal(response.status(), 200);
  const links = page.locator('table.runs tbody tr td:first-child a');
  assert.ok((await links.count()) >= 1);
  assert.match(await page.locator('table.runs').textContent(), /succeeded/);
  await page.screenshot({ path: join(shots, 'runs.png'), fullPage: false });

  await Promise.all([page.waitForURL(/\/runs\/.+/), links.first().click()]);
  const nodes = page.locator('svg.dag g.node');
  assert.equal(await nodes.count(), 6);
  assert.ok((await page.locator('svg.dag path.edge').count()) >= 6);
  assert.ok((await page.locator('ul.legend li').count()) >= 5);
  const lineage = await page.locator('table.artifacts').textContent();
  assert.match(lineage, /train_model\.model/);
  assert.match(lineage, /evaluation \(model\)/);
  await page.screenshot({ path: join(shots, 'run.png'), fullPage: true });
});

test('unknown ids get a 404 page with a way back', async () => {
  let response = await page.goto(`${base}/runs/no-such-run`);
  assert.equal(response.status(), 404);
  assert.match(await page.locator('main').textContent(), /No run has the id “no-such-run”/);
  assert.equal(await page.locator('main a.button').getAttribute('href'), '/runs');

  response = await page.goto(`${base}/models/customer_satisfaction/999`);
  assert.equal(response.status(), 404);
  assert.equal(await page.locator('main a.button').getAttribute('href'), '/models');
  await Promise.all([page.waitForURL(/\/models$/), page.locator('main a.button').click()]);
});

test('pages raised no browser errors', () => {
  assert.deepEqual(problems, []);
});
