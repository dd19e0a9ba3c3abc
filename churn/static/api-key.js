// The API key typed on the scoring or the monitoring page, kept for this tab only: sessionStorage, never
// localStorage, never the URL. Loaded before either page's script, which reads it as window.churnApiKey.
"use strict";

(() => {
  const STORAGE = "churn-api-key";

  window.churnApiKey = {
    stored() {
      try {
        return sessionStorage.getItem(STORAGE) || "";
      } catch (error) {
        return "";  // Storage disabled: the key lasts as long as the page.
      }
    },

    store(key) {
      try {
        if (key) sessionStorage.setItem(STORAGE, key);
        else sessionStorage.removeItem(STORAGE);
      } catch (error) {
        // As above.
      }
    },
  };
})();
