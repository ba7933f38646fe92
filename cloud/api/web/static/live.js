// Live events of a home (server-sent events): alert changes and latest readings. The
// browser reconnects by itself after a dropped connection; when the server refuses the
// stream (the alert service is not running) it is tried again later, with growing waits.
// After any gap the page is asked to reload its lists (events may have been missed).

import { API } from "./api.js";

export function connect(site, handlers, onState) {
  let source = null;
  let wait = 2000;
  let timer = null;
  let hadGap = false;
  let stopped = false;

  const state = (text, live) => {
    if (onState) onState(text, live);
  };

  function open() {
    source = new EventSource(`${API}/sites/${encodeURIComponent(site)}/events`);
    source.addEventListener("open", () => {
      wait = 2000;
      state("Live: updates appear as they happen.", true);
      if (hadGap && handlers.resync) handlers.resync();
      hadGap = false;
    });
    source.addEventListener("alert", (event) => handlers.alert?.(JSON.parse(event.data)));
    source.addEventListener("reading", (event) => handlers.reading?.(JSON.parse(event.data)));
    source.addEventListener("resync", () => handlers.resync?.());
    source.addEventListener("error", () => {
      hadGap = true;
      if (source.readyState === EventSource.CLOSED) {
        state("Live updates are unavailable; retrying…", false);
        source.close();
        if (!stopped) {
          timer = setTimeout(open, wait);
          wait = Math.min(wait * 2, 60000);
        }
      } else {
        state("Reconnecting…", false);
      }
    });
  }

  open();
  return {
    close() {
      stopped = true;
      clearTimeout(timer);
      source?.close();
    },
  };
}
