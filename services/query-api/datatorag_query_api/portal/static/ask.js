// The ask page: an employee (token in the URL fragment) or a signed-in admin (session cookie)
// asks; the answer, its citations with the quoted words highlighted, the passages and feedback.
// Untrusted text is only ever set with textContent.
(() => {
  const TOKEN = "dtr_employee_token";
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  if (fragment.get("token")) {
    sessionStorage.setItem(TOKEN, fragment.get("token"));
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  const token = sessionStorage.getItem(TOKEN);
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content;
  const $ = (id) => document.getElementById(id);
  const el = (tag, text, cls) => {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  };
  const headers = () => {
    const h = { "Content-Type": "application/json" };
    if (token) h.Authorization = "Bearer " + token;
    else if (csrf) h["X-CSRF-Token"] = csrf;
    return h;
  };
  let answerId = null;

  // The passage with every quoted span marked (offsets when the API gives them, else a search).
  function highlighted(text, quotes) {
    const spans = [];
    for (const q of quotes) {
      if (Number.isInteger(q.start) && Number.isInteger(q.end)) spans.push([q.start, q.end]);
      else if (q.text) {
        const at = text.indexOf(q.text);
        if (at >= 0) spans.push([at, at + q.text.length]);
      }
    }
    spans.sort((a, b) => a[0] - b[0]);
    const block = el("blockquote");
    let pos = 0;
    for (const [start, end] of spans) {
      if (start < pos) continue;
      block.append(text.slice(pos, start), el("mark", text.slice(start, end)));
      pos = end;
    }
    block.append(text.slice(pos));
    return block;
  }

  function quotesOf(citation) {
    if (Array.isArray(citation.quotes)) return citation.quotes;
    return citation.quote ? [{ text: citation.quote, start: citation.start, end: citation.end }] : [];
  }

  function pages(list) {
    return list && list.length ? (list.length > 1 ? "pages " : "page ") + list.join(", ") : "";
  }

  function render(data) {
    answerId = data.answer_id;
    const answer = $("answer");
    answer.replaceChildren();
    answer.classList.toggle("abstained", data.abstained);
    if (data.abstained) {
      answer.append(el("strong", "Not in the documents. "), data.answer);
    } else {
      answer.append(data.answer);
    }
    if (typeof data.confidence === "number") {
      answer.append(el("span", "Confidence " + Math.round(100 * data.confidence) + "%", "confidence"));
    }
    const citations = $("citations");
    citations.replaceChildren();
    data.citations.forEach((c, i) => {
      const item = el("li");
      item.id = "citation-" + (i + 1);
      item.append(el("strong", c.title), " ", el("span", pages(c.pages), "muted"));
      const hit = data.hits.find((h) => h.chunk_id === c.chunk_id)
        || data.hits.find((h) => h.doc_id === c.doc_id && (h.text || "").includes(c.quote || ""));
      item.append(highlighted(hit ? hit.text : c.quote || "", hit ? quotesOf(c) : []));
      citations.append(item);
    });
    if (!data.citations.length) citations.append(el("li", "No citations.", "muted"));
    const passages = $("passages");
    passages.replaceChildren();
    for (const h of data.hits) {
      const item = el("li");
      item.append(el("strong", h.title), " ", el("span", [h.heading, pages(h.pages)].filter(Boolean).join(" · "), "muted"));
      item.append(el("blockquote", h.text));
      passages.append(item);
    }
    document.querySelectorAll("#feedback button").forEach((b) => b.setAttribute("aria-pressed", "false"));
    $("feedback-status").textContent = "";
    $("comment").value = "";
    $("result").hidden = false;
  }

  $("ask-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = $("question").value.trim();
    if (!question) return;
    $("status").textContent = "Looking in your documents…";
    $("result").hidden = true;
    try {
      const response = await fetch("/v1/query", {
        method: "POST", headers: headers(), credentials: "same-origin",
        body: JSON.stringify({ question, top_k: 5 }),
      });
      const data = await response.json();
      if (!response.ok) {
        $("status").textContent = response.status === 401
          ? "Your link has expired or is not valid: open the assistant again from your HR system."
          : "Something went wrong: " + (data.detail || response.statusText);
        return;
      }
      $("status").textContent = "";
      render(data);
    } catch (err) {
      $("status").textContent = "The service could not be reached. Try again in a moment.";
    }
  });

  document.querySelectorAll("#feedback button").forEach((button) => {
    button.addEventListener("click", async () => {
      if (!answerId) return;
      const helpful = button.dataset.helpful === "true";
      const response = await fetch("/v1/answers/" + encodeURIComponent(answerId) + "/feedback", {
        method: "POST", headers: headers(), credentials: "same-origin",
        body: JSON.stringify({ helpful, comment: $("comment").value }),
      });
      document.querySelectorAll("#feedback button").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
      $("feedback-status").textContent = response.ok ? "Thank you for your feedback." : "Feedback could not be saved.";
    });
  });
})();
