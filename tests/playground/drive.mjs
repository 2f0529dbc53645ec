// Drives the Microsoft 365 Agents Playground (Teams, emulated by Microsoft's own client) in headless
// Chromium against scim-help's /api/messages, the way an admin would: the welcome card, a typed report,
// a card click that moves the conversation on, the hand-off to the escalation channel.
// Usage: node drive.mjs <playground url> <screenshot dir>. Prints one JSON object per step; exit 1 on failure.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [url, shots] = process.argv.slice(2);
const STEP_TIMEOUT = 20000;
const ACCOUNT = 'Contoso 1234 [Click to re-verify](https://evil.example/login)';
const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'scim-help-playground-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: flags,
  viewport: { width: 1400, height: 1000 },
});
const page = context.pages()[0] || await context.newPage();
let n = 0;

function report(step, ok, detail = {}) {
  console.log(JSON.stringify({ step, ok, ...detail }));
}

async function shot(name) {
  if (shots) await page.screenshot({ path: path.join(shots, `${String(++n).padStart(2, '0')}-${name}.png`) });
}

// The cards in the open conversation, newest last (Adaptive Cards render into .ac-adaptiveCard), and the
// choices on one: ActionSet buttons and selectable rows.
const cards = () => page.locator('.ac-adaptiveCard');
const choices = (card) => card.locator('.ac-actionSet button, .ac-selectable');

async function waitForCard(text, { after = 0 } = {}) {
  const deadline = Date.now() + STEP_TIMEOUT;
  while (Date.now() < deadline) {
    const count = await cards().count();
    for (let i = count - 1; i >= after; i--) {
      const t = await cards().nth(i).innerText();
      if (t.includes(text)) return { index: i, text: t, count };
    }
    await page.waitForTimeout(200);
  }
  throw new Error(`no card containing ${JSON.stringify(text)} appeared`);
}

async function say(text) {
  // The compose box is a rich-text editor (a contenteditable textbox), typed into like a person would.
  const box = page.locator('[contenteditable="true"][role="textbox"]').last();
  await box.click();
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
}

// A choice is a button (short labels) or a full-width row starting with ▸ (long ones): click it either way.
async function choose(card, label) {
  const wanted = label.toLowerCase();
  const all = choices(card);
  for (let i = 0; i < await all.count(); i++) {
    if ((await all.nth(i).innerText()).replace(/^▸\s*/, '').trim().toLowerCase() === wanted) return all.nth(i).click();
  }
  throw new Error(`no choice ${JSON.stringify(label)} on the card`);
}

async function openChat(name) {
  await page.getByText(name, { exact: true }).first().click();
  await page.waitForTimeout(500);
}

async function step(name, fn) {
  try {
    const detail = await fn();
    await shot(name);
    report(name, true, detail || {});
  } catch (err) {
    await shot(`${name}-failed`).catch(() => {});
    report(name, false, { error: String(err && err.message || err) });
    await context.close();
    process.exit(1);
  }
}

await page.goto(url, { waitUntil: 'networkidle' });

await step('welcome card', async () => {
  const card = await waitForCard('I help you troubleshoot SCIM provisioning');
  if (!card.text.includes('SCIM provisioning cannot be enabled')) throw new Error('the symptom picker is missing');
  return { cards: card.count };
});

await step('bot hears from the escalation channel', async () => {
  // Opening the team's General channel installs the bot in the team: it greets there, and from then on
  // knows where that channel is (as in Teams, where adding the app to a team does the same).
  await openChat('General');
  await waitForCard('I help you troubleshoot SCIM provisioning');
  await openChat('Personal Chat');
  await waitForCard('I help you troubleshoot SCIM provisioning');
});

// The engine's wording changes; the test follows the conversation by its shape: a card with choices
// after the report, a click that brings the next question and marks the card answered, then the fields of
// the hand-off (the account typed, the rest skipped or picked) until the ticket is out.

async function newCardWithChoices(after) {
  const deadline = Date.now() + STEP_TIMEOUT;
  while (Date.now() < deadline) {
    const count = await cards().count();
    for (let i = count - 1; i >= after; i--) {
      if (await choices(cards().nth(i)).count()) return { index: i, text: await cards().nth(i).innerText(), count };
    }
    await page.waitForTimeout(200);
  }
  throw new Error('no new card with choices appeared');
}

await step('typed report', async () => {
  const before = await cards().count();
  await say('new hires never show up in Cato');
  const card = await newCardWithChoices(before);
  return { card: card.text.split('\n')[0] };
});

await step('card click moves the conversation on', async () => {
  const count = await cards().count();
  const card = await newCardWithChoices(count - 1);
  const choice = choices(cards().nth(card.index)).first();
  const label = (await choice.innerText()).replace(/^▸\s*/, '').trim();
  await choice.click();
  const next = await newCardWithChoices(count);
  // The clicked card now shows the answer instead of its buttons.
  const deadline = Date.now() + STEP_TIMEOUT;
  let answered = '';
  while (Date.now() < deadline) {
    answered = await cards().nth(card.index).innerText();
    if (answered.includes(`✅ ${label}`)) break;
    await page.waitForTimeout(200);
  }
  if (!answered.includes(`✅ ${label}`)) throw new Error(`the clicked card was not updated: ${answered}`);
  if (await choices(cards().nth(card.index)).count()) throw new Error('the clicked card still has its buttons');
  return { clicked: label, next: next.text.split('\n')[0] };
});

await step('hand-off card', async () => {
  let count = await cards().count();
  await say('talk to a human');
  let typedAccount = false;
  for (let turn = 0; turn < 10; turn++) {
    const card = await waitForCard('', { after: count });  // the newest card of the bot's answer
    await page.waitForTimeout(700);  // the rest of that answer
    count = await cards().count();
    const last = cards().nth(count - 1);
    const text = await last.innerText();
    const all = await Promise.all([...Array(count - card.index).keys()].map((k) => cards().nth(card.index + k).innerText()));
    if (all.some((t) => t.includes("posted this ticket to the support team's channel"))) break;
    if (!typedAccount && /account/i.test(text)) {
      typedAccount = true;
      await say(ACCOUNT);  // a markdown link typed as the account name: it must stay text everywhere
    } else if (await choices(last).filter({ hasText: /^\s*Skip\s*$/ }).count()) {
      await choose(last, 'Skip');
    } else if (await choices(last).count()) {
      await choices(last).first().click();
    } else {
      throw new Error(`the hand-off stalled at: ${text}`);
    }
  }
  const ticket = await waitForCard("posted this ticket to the support team's channel");
  await openChat('General');
  const posted = await waitForCard('SCIM provisioning escalation');
  if (!posted.text.includes('[Click to re-verify]')) throw new Error(`the hand-off card lacks the account as typed: ${posted.text}`);
  if (shots) await cards().nth(posted.index).screenshot({ path: path.join(shots, 'hand-off-card.png') });
  const injected = await page.locator('.ac-adaptiveCard a[href*="evil.example"]').count();
  if (injected) throw new Error(`${injected} link(s) to evil.example rendered`);
  return { ticket: ticket.index >= 0, injected };
});

await context.close();
