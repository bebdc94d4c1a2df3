// MovR's small enhancements. Every page works without them: this file only makes them pleasant.
(() => {
  'use strict';

  // "started 4 min ago" stays true while the page is open (the same words as the server's).
  const ago = (ms) => {
    const minutes = Math.floor(Math.max(0, ms) / 60000);
    if (minutes < 1) return 'just now';
    if (minutes < 60) return `${minutes} min ago`;
    const hours = Math.floor(minutes / 60);
    return hours < 24 ? `${hours} h ago` : null;
  };
  const tick = () => {
    for (const time of document.querySelectorAll('time[data-since]')) {
      const text = ago(Date.now() - Date.parse(time.dateTime));
      if (text && time.textContent !== text) time.textContent = text;
    }
  };
  setInterval(tick, 30000);

  // A confirmation step in a dialog: the step's own page is fetched and its panel shown, so the words, the
  // refusals and the form (CSRF token included) are the server's. On any trouble, the page itself opens.
  const dialog = document.getElementById('confirm-dialog');
  let opener = null;

  const confirmIn = async (url, trigger) => {
    try {
      const response = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'text/html' } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const page = new DOMParser().parseFromString(await response.text(), 'text/html');
      const panel = page.querySelector('[data-confirm-panel]');
      if (!panel) throw new Error('no confirmation panel');
      // In a dialog over a page that has its own h1, the question is an h2.
      const heading = panel.querySelector('[data-confirm-heading]');
      const title = page.createElement('h2');
      title.className = heading.className;
      title.id = 'confirm-dialog-title';
      title.textContent = heading.textContent;
      heading.replaceWith(title);
      panel.removeAttribute('aria-labelledby');
      panel.classList.remove('shadow-sm');
      dialog.replaceChildren(document.importNode(panel, true));
      dialog.setAttribute('aria-labelledby', 'confirm-dialog-title');
      opener = trigger;
      dialog.showModal();
      const field = dialog.querySelector('input:not([type=hidden])');
      if (field) {
        field.focus();
        field.select();
      } else {
        dialog.querySelector('[data-confirm-cancel]')?.focus();
      }
    } catch {
      window.location.assign(url);
    }
  };

  if (dialog && typeof dialog.showModal === 'function') {
    document.addEventListener('click', (event) => {
      const link = event.target.closest('a[data-confirm]');
      if (link) {
        event.preventDefault();
        confirmIn(link.href, link);
        return;
      }
      const cancel = event.target.closest('[data-confirm-cancel]');
      if (cancel && dialog.contains(cancel)) {
        event.preventDefault();
        dialog.close();
      }
    });
    document.addEventListener('submit', (event) => {
      const form = event.target;
      if (!(form instanceof HTMLFormElement) || !form.matches('form[data-confirm]')) return;
      event.preventDefault();
      const url = new URL(form.action);
      for (const [name, value] of new FormData(form)) if (typeof value === 'string') url.searchParams.set(name, value);
      confirmIn(url.href, form.querySelector('[type=submit]'));
    });
    // A click on the backdrop (the dialog box itself, outside its panel) cancels.
    dialog.addEventListener('click', (event) => {
      if (event.target === dialog) dialog.close();
    });
    dialog.addEventListener('close', () => {
      dialog.replaceChildren();
      opener?.focus();
      opener = null;
    });
  }

  // Google maps (only with API_KEY): frames load as they come into view; one that has not loaded in 10 s is
  // dropped, and the link under it stays.
  const maps = document.querySelectorAll('[data-map-src]');
  if (maps.length && navigator.onLine !== false && 'IntersectionObserver' in window) {
    const observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        observer.unobserve(entry.target);
        const box = entry.target;
        const frame = document.createElement('iframe');
        frame.title = box.dataset.mapTitle || 'Map';
        frame.referrerPolicy = 'no-referrer-when-downgrade';
        const timer = setTimeout(() => frame.remove(), 10000);
        frame.addEventListener('load', () => {
          clearTimeout(timer);
          box.classList.add('map-loaded');
        });
        frame.src = box.dataset.mapSrc;
        box.prepend(frame);
      }
    }, { rootMargin: '200px' });
    for (const box of maps) observer.observe(box);
  }
})();
