// scim-help web chat. Vanilla JS, no build step. Everything the server sends is inserted as text nodes
// (never innerHTML), so a pasted "<script>" stays text.
(function () {
  "use strict";

  var STORAGE_KEY = "scim-help.conversation";
  var log = document.getElementById("log");
  var form = document.getElementById("composer");
  var input = document.getElementById("composer-input");
  var sendButton = document.getElementById("send");
  var restartButton = document.getElementById("restart");
  var statusLine = document.getElementById("status");
  var scroller = document.getElementById("main");
  var note = document.getElementById("composer-note");
  var LIMIT = input.maxLength > 0 ? input.maxLength : 4000; // index.html's maxlength, the server's MAX_TEXT
  var narrow = window.matchMedia ? window.matchMedia("(max-width: 600px)") : null;

  var conversation = readId();
  var busy = false;

  // ---- storage -----------------------------------------------------------------------------------

  function readId() {
    try {
      var id = window.localStorage.getItem(STORAGE_KEY);
      return id && /^web:[A-Za-z0-9_-]{16,64}$/.test(id) ? id : null;
    } catch (e) {
      return null;
    }
  }

  function saveId(id) {
    conversation = id;
    try {
      if (id) window.localStorage.setItem(STORAGE_KEY, id);
      else window.localStorage.removeItem(STORAGE_KEY);
    } catch (e) { /* private mode: the conversation just won't survive a reload */ }
  }

  // ---- formatting --------------------------------------------------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  // **bold** and `code` (the two inline conventions of Reply.text), and http(s) links.
  function inline(parent, text) {
    var parts = String(text).split(/(\*\*[^*\n]+\*\*|`[^`\n]+`|https?:\/\/[^\s<>"]+)/);
    parts.forEach(function (part) {
      if (!part) return;
      if (part.length > 4 && part.slice(0, 2) === "**" && part.slice(-2) === "**") {
        parent.appendChild(el("strong", null, part.slice(2, -2)));
      } else if (part.length > 2 && part[0] === "`" && part[part.length - 1] === "`") {
        parent.appendChild(el("code", null, part.slice(1, -1)));
      } else if (/^https?:\/\//.test(part)) {
        var tail = (part.match(/[.,;:!?)\]]+$/) || [""])[0];
        var href = tail ? part.slice(0, -tail.length) : part;
        var a = el("a", null, href);
        a.href = href;
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        parent.appendChild(a);
        if (tail) parent.appendChild(document.createTextNode(tail));
      } else {
        parent.appendChild(document.createTextNode(part));
      }
    });
  }

  function paragraphs(parent, text) {
    String(text || "").split(/\n{2,}/).forEach(function (block) {
      if (!block.trim()) return;
      var p = el("p");
      block.split("\n").forEach(function (line, i) {
        if (i) p.appendChild(document.createElement("br"));
        inline(p, line);
      });
      parent.appendChild(p);
    });
  }

  // "Access > Directory Services > SCIM" -> Access › Directory Services › SCIM
  function consolePath(path) {
    var wrap = el("span", "path");
    var segments = String(path).split(/\s+>\s+/);
    wrap.setAttribute("aria-label", "Console path: " + segments.join(", then "));
    segments.forEach(function (segment, i) {
      if (i) {
        var sep = el("span", "sep", "\u203A");
        sep.setAttribute("aria-hidden", "true");
        wrap.appendChild(sep);
      }
      var seg = el("span", "seg", segment);
      seg.setAttribute("aria-hidden", "true");
      wrap.appendChild(seg);
    });
    return wrap;
  }

  // ---- messages ----------------------------------------------------------------------------------

  function scrollToEnd() {
    scroller.scrollTop = scroller.scrollHeight;
  }

  // To the end, but never past the top of `node`: a reply taller than the screen (the greeting on a phone)
  // is read from its start, not from its buttons.
  function reveal(node) {
    scrollToEnd();
    if (!node) return;
    var above = scroller.getBoundingClientRect().top - node.getBoundingClientRect().top + 16;
    if (above > 0) scroller.scrollTop -= above;
  }

  function addAdmin(text) {
    var node = el("article", "msg admin");
    node.appendChild(el("span", "who visually-hidden", "You said:"));
    node.appendChild(document.createTextNode(text));
    log.appendChild(node);
    scrollToEnd();
    return node;
  }

  function addBot(reply, active) {
    var node = el("article", "msg bot");
    node.dataset.kind = reply.kind;
    node.appendChild(el("span", "who visually-hidden", "scim-help:"));
    if (reply.title) node.appendChild(el("p", "title", reply.title));
    paragraphs(node, reply.text);

    if (reply.path) {
      var where = el("p", "where", "In the console: ");
      where.appendChild(consolePath(reply.path));
      node.appendChild(where);
    }
    if (reply.quote) {
      var quote = el("blockquote", "quote");
      quote.appendChild(el("span", "label", "Look for this message:"));
      quote.appendChild(el("q", null, reply.quote));
      node.appendChild(quote);
    }
    if (reply.steps && reply.steps.length) {
      var ol = el("ol", "steps");
      ol.setAttribute("aria-label", "Steps");
      reply.steps.forEach(function (step) {
        var li = el("li");
        inline(li, step.text);
        if (step.path) li.appendChild(consolePath(step.path));
        ol.appendChild(li);
      });
      node.appendChild(ol);
    }
    if (reply.after) paragraphs(node, reply.after);
    if (reply.link) {
      var a = el("a", "reply-link", reply.link_label || reply.link);
      a.href = /^https?:\/\//.test(reply.link) ? reply.link : "#";
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      node.appendChild(a);
    }
    if (reply.ticket) node.appendChild(ticketCard(reply.ticket));
    if (reply.choices && reply.choices.length) {
      var group = el("div", "choices");
      group.setAttribute("role", "group");
      group.setAttribute("aria-label", reply.title || "Answers");
      reply.choices.forEach(function (choice) {
        var b = el("button", choice.style || "", choice.label);
        b.type = "button";
        b.dataset.choice = choice.id;
        b.disabled = !active;
        b.addEventListener("click", function () {
          if (busy || b.disabled) return;
          b.classList.add("picked");
          send({ choice: choice.id }, choice.label, true);
        });
        group.appendChild(b);
      });
      node.appendChild(group);
    }
    log.appendChild(node);
    return node;
  }

  function addDivider(text) {
    var node = el("div", "divider", text);
    node.setAttribute("role", "separator");
    log.appendChild(node);
  }

  function addError(message) {
    var node = el("article", "msg bot error");
    node.setAttribute("role", "alert");
    node.appendChild(el("p", null, message));
    log.appendChild(node);
    scrollToEnd();
  }

  // Only the latest question's buttons are live; returns the ones switched off (to undo on an error).
  function deactivateChoices() {
    var buttons = Array.prototype.slice.call(log.querySelectorAll(".choices button:not(:disabled)"));
    buttons.forEach(function (b) { b.disabled = true; });
    return buttons;
  }

  // ---- ticket ------------------------------------------------------------------------------------

  function ticketCard(ticket) {
    var section = el("section", "ticket");
    section.setAttribute("aria-label", "Support ticket");
    var actions = el("div", "ticket-actions");
    var files = ticket.files || { markdown: "cato-scim-ticket.md", json: "cato-scim-ticket.json" };
    var doc = ticket.document || ticket;

    var copy = el("button", "primary", "Copy ticket");
    copy.type = "button";
    copy.dataset.action = "copy";
    copy.addEventListener("click", function () { copyText(ticket.body || ""); });

    var md = el("button", "", "Download .md");
    md.type = "button";
    md.dataset.action = "download-md";
    md.addEventListener("click", function () {
      download(files.markdown, ticket.body || "", "text/markdown;charset=utf-8");
    });

    var json = el("button", "", "Download .json");
    json.type = "button";
    json.dataset.action = "download-json";
    json.addEventListener("click", function () {
      download(files.json, JSON.stringify(doc, null, 2) + "\n", "application/json;charset=utf-8");
    });

    actions.appendChild(copy);
    actions.appendChild(md);
    actions.appendChild(json);
    section.appendChild(actions);

    section.appendChild(ticketView(ticket));

    // The Markdown itself, for those who want to see what "Copy ticket" copies.
    var raw = el("details", "ticket-raw");
    raw.appendChild(el("summary", "", "Ticket text (Markdown)"));
    var pre = el("pre", "ticket-body", ticket.body || "");
    pre.tabIndex = 0; // scrollable region must be reachable by keyboard
    pre.setAttribute("aria-label", "Ticket text (Markdown)");
    raw.appendChild(pre);
    section.appendChild(raw);
    return section;
  }

  // The ticket rendered from its fields (labels from the knowledge pack: ticket.labels), never from HTML.
  function ticketView(ticket) {
    var labels = ticket.labels || {};
    var view = el("div", "ticket-view");
    if (labels.header) view.appendChild(el("h3", "", labels.header));
    var none = labels.not_provided || "not provided";
    var facts = el("dl", "ticket-facts");
    function fact(key, value) {
      facts.appendChild(el("dt", "", labels[key] || key));
      facts.appendChild(el("dd", value ? "" : "missing", value || none));
    }
    fact("account", ticket.account);
    fact("idp", ticket.idp);
    fact("upns", (ticket.upns || []).join(", "));
    fact("groups", (ticket.groups || []).join(", "));
    fact(ticket.topic ? "topic" : "symptom", ticket.symptom_title);
    if (ticket.cause_title) fact("cause", ticket.cause_title);
    if (ticket.resolution_tried && ticket.resolution_tried.length) fact("tried", ticket.resolution_tried.join("; "));
    if (ticket.why) fact("why", ticket.why);
    view.appendChild(facts);
    function list(key, items, ordered) {
      if (!items || !items.length) return;
      view.appendChild(el("h4", "", labels[key] || key));
      var node = el(ordered ? "ol" : "ul", "");
      items.forEach(function (item) { node.appendChild(el("li", "", item)); });
      view.appendChild(node);
    }
    list("steps", (ticket.steps || []).map(function (s) { return s.check + ": " + s.answer; }), true);
    list("ruled_out", ticket.ruled_out, false);
    list("attach", ticket.attachments, false);
    return view;
  }

  function announce(text) {
    statusLine.textContent = "";
    // A fresh text node so screen readers announce the same message twice in a row too.
    window.setTimeout(function () { statusLine.textContent = text; }, 30);
  }

  function copyText(text) {
    function fallback() {
      var area = el("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      announce(ok ? "Ticket copied to the clipboard." : "Copy failed — select the ticket text and copy it.");
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () {
        announce("Ticket copied to the clipboard.");
      }, fallback);
    } else {
      fallback();
    }
  }

  function download(name, content, type) {
    var url = URL.createObjectURL(new Blob([content], { type: type }));
    var a = el("a");
    a.href = url;
    a.download = name;
    a.className = "visually-hidden";
    document.body.appendChild(a);
    a.click();
    document.body.removeChild(a);
    window.setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
    announce("Downloading " + name + ".");
  }

  // ---- talking to the server ---------------------------------------------------------------------

  function request(method, path, body, headers) {
    var init = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    Object.keys(headers || {}).forEach(function (name) { init.headers[name] = headers[name]; });
    return fetch(path, init).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        if (!res.ok) {
          var err = new Error(data.message || ("The server answered " + res.status + "."));
          err.status = res.status;
          err.code = data.error;
          throw err;
        }
        return data;
      });
    }, function () {
      var err = new Error("Can't reach scim-help. Check your connection and try again.");
      err.status = 0;
      throw err;
    });
  }

  function setBusy(on) {
    busy = on;
    document.body.dataset.busy = on ? "true" : "false";
    sendButton.disabled = on;
    restartButton.disabled = on;
    var typing = log.querySelector(".typing");
    if (on && !typing) {
      typing = el("p", "typing", "scim-help is thinking\u2026");
      typing.setAttribute("aria-hidden", "true");
      log.appendChild(typing);
      scrollToEnd();
    } else if (!on && typing) {
      typing.remove();
    }
  }

  // Returns the first of the new replies' answer groups, if any.
  function showTurn(data) {
    document.body.dataset.phase = data.phase || "";
    document.body.dataset.asking = data.asking || "";
    var first = null;
    var group = null;
    if (data.started && log.querySelector(".msg")) addDivider("New conversation");
    (data.replies || []).forEach(function (reply) {
      var node = addBot(reply, true);
      if (!first) first = node;
      if (!group) group = node.querySelector(".choices");
    });
    reveal(first);
    return group;
  }

  // After an answer button: focus goes to the next answers' group, not into it, so Tab reaches the first
  // button, a screen reader hears the group's name once (the log reads the reply), nothing scrolls, and a
  // phone's keyboard stays down. Only a question that wants typing brings focus to the box.
  function focusAfterClick(group) {
    if (!group) {
      input.focus();
      return;
    }
    group.tabIndex = -1;
    group.addEventListener("blur", function () { group.removeAttribute("tabindex"); }, { once: true });
    group.focus({ preventScroll: true });
  }

  // payload: {text} or {choice}; label: what to echo as the admin's message.
  function send(payload, label, clicked) {
    if (busy) return;
    var offered = deactivateChoices();
    if (label) addAdmin(label);
    setBusy(true);
    var body = { conversation: conversation };
    if (payload.text !== undefined) body.text = payload.text;
    if (payload.choice !== undefined) body.choice = payload.choice;
    request("POST", "/api/chat", body).then(function (data) {
      setBusy(false);
      saveId(data.conversation);
      var group = showTurn(data);
      if (clicked) focusAfterClick(group);
      else input.focus();
    }, function (err) {
      setBusy(false);
      addError(err.message);
      if (err.code === "unknown_conversation") saveId(null); // the next message starts a new one
      if (payload.text) { // nothing typed is lost
        input.value = payload.text;
        fit();
      }
      offered.forEach(function (b) { b.disabled = false; b.classList.remove("picked"); });
      input.focus();
    });
  }

  function restore(entries) {
    // Buttons stay live only on the bot replies after the admin's last message.
    var lastAdmin = -1;
    entries.forEach(function (e, i) { if (e.who === "admin") lastAdmin = i; });
    var latest = null;
    entries.forEach(function (e, i) {
      if (e.who === "admin") addAdmin(e.text);
      else if (e.who === "bot" && e.reply) {
        var node = addBot(e.reply, i > lastAdmin);
        if (i > lastAdmin && !latest) latest = node;
      }
    });
    reveal(latest);
  }

  function start() {
    setBusy(true);
    var first = conversation
      ? request("GET", "/api/chat", undefined, { "X-Conversation": conversation }).then(function (data) {
          setBusy(false);
          document.body.dataset.phase = data.phase || "";
          restore(data.entries || []);
          announce("Conversation restored.");
        })
      : Promise.reject({ status: 404 });
    first.catch(function (err) {
      setBusy(false);
      if (err && (err.status === 404 || err.status === 400)) {
        saveId(null);
        send({}, null, false); // the engine's greeting, with the symptom buttons
      } else {
        addError(err.message || "Something went wrong.");
      }
    });
  }

  // ---- the message box ---------------------------------------------------------------------------

  // On a phone the box starts one line high and grows with its text up to the CSS max-height; wider
  // screens keep the two rows and the resize handle.
  function fit() {
    input.style.height = "";
    if (!narrow || !narrow.matches) return;
    if (input.value && input.scrollHeight > input.clientHeight) { // the placeholder does not count
      input.style.height = input.scrollHeight + input.offsetHeight - input.clientHeight + "px";
    }
  }

  function count(n) {
    return n.toLocaleString("en-US");
  }

  var noteKind = "";
  function setNote(kind, text) {
    noteKind = kind;
    note.textContent = text;
  }

  // At the limit the box takes no more and says so; a paste's own note stays until the box is sent or emptied.
  function noteLimit() {
    if (!input.value) setNote("", "");
    else if (input.value.length >= LIMIT) {
      if (!noteKind) setNote("full", "That's the limit: a message holds at most " + count(LIMIT) + " characters.");
    } else if (noteKind === "full") setNote("", "");
  }

  // maxlength cuts a long paste without a word; say what was left out (the server takes no more either).
  input.addEventListener("paste", function (event) {
    var data = event.clipboardData;
    if (!data) return;
    var pasted = data.getData("text/plain").replace(/\r\n?/g, "\n").length;
    var kept = input.value.length - (input.selectionEnd - input.selectionStart);
    window.setTimeout(function () { // after the browser has inserted what fits
      var added = input.value.length - kept;
      if (added >= pasted) {
        noteLimit();
        return;
      }
      setNote("paste", added > 0
        ? "Your paste was " + count(pasted) + " characters; only the first " + count(added) +
          " were added (a message holds " + count(LIMIT) + " at most)."
        : "The box is full (a message holds " + count(LIMIT) + " characters at most): your paste of " +
          count(pasted) + " characters was not added.");
    }, 0);
  });

  input.addEventListener("input", function (event) {
    fit();
    if (event.inputType !== "insertFromPaste") noteLimit(); // the paste handler speaks for pastes, once
  });

  if (narrow) {
    if (narrow.addEventListener) narrow.addEventListener("change", fit);
    else if (narrow.addListener) narrow.addListener(fit);
  }

  // ---- controls ----------------------------------------------------------------------------------

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text || busy) return;
    input.value = "";
    fit();
    setNote("", "");
    send({ text: text }, text, false);
  });

  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey && !event.isComposing) {
      event.preventDefault();
      if (typeof form.requestSubmit === "function") form.requestSubmit();
      else form.dispatchEvent(new Event("submit", { cancelable: true }));
    }
  });

  restartButton.addEventListener("click", function () {
    if (busy) return;
    send({ choice: "cmd:restart" }, "Start over", true);
  });

  start();
})();
