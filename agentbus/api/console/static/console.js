// agentbus console: live updates over server-sent events. The pages work without it.
"use strict";
(function () {
  const main = document.getElementById("main");
  const note = document.getElementById("live-state");

  // The jobs list: the server sends the page's rows again whenever one of them changes.
  const rowsUrl = main && main.dataset.liveRows;
  if (rowsUrl && window.EventSource) {
    const tbody = document.getElementById("job-rows");
    const es = new EventSource(rowsUrl);
    es.addEventListener("rows", (e) => { tbody.innerHTML = e.data; if (note) note.textContent = "Updates live."; });
    es.onerror = () => { if (note) note.textContent = "Live updates paused; retrying…"; };
  }

  // A job: its own event stream says something changed; fetch the live part of the page again.
  const eventsUrl = main && main.dataset.events;
  if (eventsUrl && window.EventSource) {
    const live = document.getElementById("live");
    let timer = null;
    const refresh = () => {
      timer = null;
      fetch(main.dataset.live, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then((r) => (r.ok ? r.text() : null))
        .then((html) => {
          if (html === null) return;
          live.innerHTML = html;
          const status = live.querySelector("#job-status .badge");
          const say = document.getElementById("live-announce");
          if (say && status && say.dataset.last !== status.textContent) {
            say.dataset.last = status.textContent;
            say.textContent = "Job " + status.textContent.trim();  // screen readers hear the status, not the table
          }
          const cancel = document.getElementById("cancel-form");
          if (cancel && status && ["succeeded", "failed", "cancelled"].includes(status.textContent.trim())) cancel.remove();
        });
    };
    const soon = () => { if (timer === null) timer = setTimeout(refresh, 250); };
    const es = new EventSource(eventsUrl);
    for (const kind of ["job", "task", "approval"]) es.addEventListener(kind, soon);
    es.addEventListener("task.output", (e) => {
      const out = document.getElementById("output");
      document.getElementById("output-section").hidden = false;
      try { const d = JSON.parse(e.data); out.textContent += (d.text !== undefined ? d.text : JSON.stringify(d.data ?? d)) + "\n"; }
      catch (_) { out.textContent += e.data + "\n"; }
    });
    es.addEventListener("end", () => { es.close(); refresh(); });
  }
})();
