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

/** Returns whether the page scrolls sideways, or an element overflows its box. */
async function overflowsSideways(selector = 'html') {
  return page.$$eval(selector, (elements) =>
    elements.some((element) => element.scrollWidth > element.clientWidth + 1),
  );
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

test('bounded features take only their real values', async () => {
  await page.goto(`${base}/`);
  // clean_data numbers months from 1 and weekdays from 0 for Monday.
  const expected = {
    purchase_month: ['1', '12', /A month is a whole number from 1 to 12/],
    purchase_weekday: ['0', '6', /A weekday is a whole number from 0 \(Monday\) to 6 \(Sunday\)/],
    same_state: ['0', '1', /Enter 1 for yes or 0 for no/],
  };
  for (const [name, [min, max, rule]] of Object.entries(expected)) {
    const input = page.locator(`input[name="${name}"]`);
    assert.equal(await input.getAttribute('min'), min, name);
    assert.equal(await input.getAttribute('max'), max, name);
    assert.equal(await input.getAttribute('step'), '1', name);
    assert.match(await page.locator(`#h-${name}`).textContent(), rule);
  }
  for (const name of ['order_item_count', 'order_seller_count', 'product_photos_qty']) {
    const input = page.locator(`input[name="${name}"]`);
    assert.equal(await input.getAttribute('step'), '1', name);
    assert.ok(Number(await input.getAttribute('min')) >= 0, name);
  }
  // The browser refuses a month of 13 and half an item before sending.
  await page.fill('input[name="purchase_month"]', '13');
  assert.equal(await page.locator('input[name="purchase_month"]').evaluate((i) => i.validity.rangeOverflow), true);
  await page.fill('input[name="order_item_count"]', '1.5');
  assert.equal(await page.locator('input[name="order_item_count"]').evaluate((i) => i.validity.stepMismatch), true);

  // The server checks again, for a link made by hand.
  await page.goto(`${base}/`);
  const defaults = new URLSearchParams(
    Object.entries(await formRecord()).map(([name, value]) => [name, String(value)]),
  );
  const cases = [
    ['purchase_month', '23', /“23” is not a valid value\. A month is a whole number from 1 to 12\./],
    ['purchase_month', '0', /A month is a whole number from 1 to 12/],
    ['purchase_weekday', '12', /A weekday is a whole number from 0 \(Monday\) to 6/],
    ['same_state', '2', /Enter 1 for yes or 0 for no/],
    ['order_item_count', '1.5', /whole number of items/],
    ['product_photos_qty', '-1', /whole number, 0 or more/],
  ];
  for (const [name, value, message] of cases) {
    const query = new URLSearchParams(defaults);
    query.set(name, value);
    const response = await page.goto(`${base}/?${query}`);
    assert.equal(response.status(), 422, `${name}=${value}`);
    assert.match(await fieldError(name), message, `${name}=${value}`);
    assert.equal(await page.locator('#prediction').count(), 0, `${name}=${value}`);
  }
  const response = await page.goto(`${base}/?${defaults}`);
  assert.equal(response.status(), 200, 'the training defaults are valid values');
});

test('an absurd value is quoted compactly', async () => {
  await page.goto(`${base}/`);
  const query = new URLSearchParams(
    Object.entries(await formRecord()).map(([name, value]) => [name, String(value)]),
  );
  query.set('price', '1e308');
  const response = await page.goto(`${base}/?${query}`);
  assert.equal(response.status(), 422);
  const message = await fieldError('price');
  assert.match(message, /^“1e308” is implausible: enter a value from 0 to /);
  assert.ok(message.length < 120, message);
  assert.equal(await page.inputValue('input[name="price"]'), '1e308');
  assert.equal(await overflowsSideways(), false, 'the page scrolls sideways');
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

  // The curl command names the address the browser used, ready to paste.
  const snippet = await page.locator('pre.request code').textContent();
  assert.ok(snippet.includes(`'http://${new URL(base).host}/invocations'`), snippet);
  assert.ok(!snippet.includes('HOST:PORT'), snippet);
  const body = JSON.parse(snippet.match(/--data '(.*)' \\/)[1]);
  assert.deepEqual(body.dataframe_records[0], record);
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
  assert.match(await fieldError('payment_value'), /“-3” is not a valid value\. An amount of money cannot be negative\./);
  assert.match(await fieldError('product_weight_g'), /implausible/);
  assert.equal(await page.inputValue('input[name="freight_value"]'), 'abc');
  assert.equal(await page.inputValue('input[name="payment_value"]'), '-3');
  assert.equal(await page.locator('#prediction').count(), 0);

  // The same through the form with the browser's checks switched off.
  await page.goto(`${base}/`);
  await page.locator('form.predict').evaluate((form) => { form.noValidate = true; });
  await page.fill('input[name="price"]', '-1');
  await Promise.all([page.waitForURL(/\?/), page.click('button[type="submit"]')]);
  assert.match(await fieldError('price'), /An amount of money cannot be negative/);
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
  // R² and the gain over baseline compare with different means, so each
  // heading names its mean.
  const r2 = page.locator('table.versions th abbr', { hasText: 'R² vs test mean' });
  assert.match(await r2.getAttribute('title'), /mean of the test rows/);
  const gain = page.locator('table.versions th abbr', { hasText: 'Gain over baseline' });
  assert.match(await gain.getAttribute('title'), /baseline MSE/);
  assert.match(await page.locator('p.caption').first().textContent(), /R² can be below 0 while the gain is positive/);
  // At 1280 pixels, no card and no table pushes the page sideways.
  assert.ok((await page.locator('table.history tbody tr').count()) >= 2);
  assert.equal(await overflowsSideways(), false, 'the page scrolls sideways');
  assert.equal(await overflowsSideways('section.card'), false, 'a card overflows');
  assert.equal(await overflowsSideways('section.card div.scroll'), false, 'a table scrolls inside its card');
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
