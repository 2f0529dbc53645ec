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

// The cards in the open conversation, newest last (Adaptive Cards render into .ac-adaptiveCard).
const cards = () => page.locator('.ac-adaptiveCard');

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
  await card.getByText(new RegExp(`^(▸ )?${label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`)).first().click();
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

let before = 0;
await step('typed report', async () => {
  before = await cards().count();
  // No users at all: the first check is on the IdP's side, so the bot asks which IdP before it.
  await say('we set up SCIM to Cato but not a single user has been provisioned');
  const card = await waitForCard('Which identity provider', { after: before });
  return { card: card.text.split('\n')[0] };
});

await step('card click moves the conversation on', async () => {
  const count = await cards().count();
  const card = cards().nth(count - 1);
  await choose(card, 'Okta');
  const next = await waitForCard('Okta', { after: count });  // the next check, in Okta's words
  // The clicked card now shows the answer instead of its buttons.
  const deadline = Date.now() + STEP_TIMEOUT;
  let answered = '';
  while (Date.now() < deadline) {
    answered = await cards().nth(count - 1).innerText();
    if (answered.includes('✅')) break;
    await page.waitForTimeout(200);
  }
  if (!answered.includes('✅ Okta')) throw new Error(`the clicked card was not updated: ${answered}`);
  return { next: next.text.split('\n')[0] };
});

await step('hand-off card', async () => {
  let count = await cards().count();
  await say('talk to a human');
  await waitForCard('account', { after: count });
  count = await cards().count();
  await say(ACCOUNT);  // a markdown link typed as the account name: it must stay text everywhere
  await waitForCard('Which users are affected', { after: count });
  for (const question of ['Which users are affected', 'Which IdP groups']) {
    count = await cards().count();
    const card = await waitForCard(question, { after: count - 1 });
    await choose(cards().nth(card.index), 'Skip');
    if (question === 'Which users are affected') await waitForCard('Which IdP groups', { after: count });
  }
  const ticket = await waitForCard('Ticket text', { after: count });
  await waitForCard("I've also posted this ticket to the support team's channel", { after: count });
  await openChat('General');
  const posted = await waitForCard('SCIM provisioning escalation');
  // The account is normalised (name and number), and the link typed into it stays text.
  if (!posted.text.includes('[Click to re-verify]')) throw new Error(`the hand-off card lacks the account as typed: ${posted.text}`);
  const injected = await page.locator('.ac-adaptiveCard a[href*="evil.example"]').count();
  if (injected) throw new Error(`${injected} link(s) to evil.example rendered`);
  return { ticket: ticket.text.includes('[Click to re-verify]'), injected };
});

await context.close();
