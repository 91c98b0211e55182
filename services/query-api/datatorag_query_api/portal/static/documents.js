// Documents: drag-and-drop (or choose) several files, upload each, and follow every document
// that is not finished until it is indexed or failed.
(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const zone = document.getElementById("dropzone");
  const input = document.getElementById("files");
  const list = document.getElementById("uploads");
  const FINAL = new Set(["indexed", "failed", "deleted"]);
  const STEP = { fetched: 1, processing: 2, indexed: 3, failed: 3, deleted: 3 };
  const pending = new Map(); // doc_id -> list item

  function item(name) {
    const li = document.createElement("li");
    const label = document.createElement("span");
    label.textContent = name + ": ";
    const progress = document.createElement("progress");
    progress.max = 3;
    progress.value = 0;
    const state = document.createElement("span");
    state.className = "state";
    state.textContent = "uploading";
    li.append(label, progress, " ", state);
    list.append(li);
    return li;
  }

  function show(li, status, reason) {
    li.querySelector("progress").value = STEP[status] || 0;
    const state = li.querySelector(".state");
    state.textContent = status + (reason ? " (" + reason + ")" : "");
    state.className = "state status-" + status;
    li.dataset.status = status;
  }

  async function upload(file) {
    const li = item(file.name);
    const body = new FormData();
    body.append("file", file);
    const response = await fetch("/v1/documents", {
      method: "POST", body, headers: { "X-CSRF-Token": csrf }, credentials: "same-origin",
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      show(li, "failed", data.detail || response.statusText);
      return;
    }
    li.dataset.docId = data.doc_id;
    show(li, data.outcome === "unchanged" ? "indexed" : data.status);
    if (data.outcome !== "unchanged") pending.set(data.doc_id, li);
    poll();
  }

  let polling = false;
  async function poll() {
    if (polling) return;
    polling = true;
    while (pending.size) {
      await new Promise((r) => setTimeout(r, 1000));
      const response = await fetch("/v1/documents?limit=500", { credentials: "same-origin" });
      if (!response.ok) break;
      const { documents } = await response.json();
      for (const doc of documents) {
        const li = pending.get(doc.doc_id);
        if (li) {
          show(li, doc.status, doc.reason);
          if (FINAL.has(doc.status)) pending.delete(doc.doc_id);
        }
        const cell = document.querySelector(`tr[data-doc-id="${CSS.escape(doc.doc_id)}"] .status`);
        if (cell && cell.dataset.status !== doc.status) {
          cell.dataset.status = doc.status;
          cell.className = "status status-" + doc.status;
          cell.textContent = doc.status;
        }
      }
    }
    polling = false;
  }

  const send = (files) => [...files].forEach(upload);
  input.addEventListener("change", () => send(input.files));
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); send(e.dataTransfer.files); });
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (e) => { if (!window.confirm(form.dataset.confirm)) e.preventDefault(); });
  });
  // Documents already on their way when the page loaded are followed too.
  document.querySelectorAll("tr[data-doc-id] .status").forEach((cell) => {
    if (!FINAL.has(cell.dataset.status)) {
      const row = cell.closest("tr");
      pending.set(row.dataset.docId, item(row.querySelector("td").firstChild.textContent.trim()));
    }
  });
  if (pending.size) poll();
})();
