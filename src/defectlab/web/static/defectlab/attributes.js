// The class attribute editor on the project settings page (progressive: without this file the
// rows still post; typed option text is split on the server). Options become chips when the
// person presses Enter or types a separator, ASCII or Chinese; × removes a chip or an attribute;
// the default is chosen among the chips.
(() => {
  "use strict";
  const SEPARATORS = /[,，、;；\n]/;

  function makeChip(row, text) {
    const pending = row.querySelector("[data-attr-pending]");
    const editor = row.closest("[data-attr-editor]");
    const chip = document.createElement("span");
    chip.className = "attr-chip";
    chip.dataset.attrChip = "";
    const hidden = document.createElement("input");
    hidden.type = "hidden";
    hidden.name = pending.name.replace(/-pending$/, "-option");
    hidden.value = text;
    hidden.setAttribute("form", editor.dataset.form);
    const label = document.createElement("span");
    label.className = "attr-chip-text";
    label.textContent = text;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "attr-chip-remove";
    remove.dataset.attrChipRemove = "";
    remove.setAttribute("aria-label", `${editor.dataset.removeText} ${text}`);
    remove.textContent = "×";
    chip.append(hidden, label, remove);
    pending.before(chip);
  }

  function options(row) {
    return [...row.querySelectorAll("[data-attr-chip] input")].map((input) => input.value);
  }

  function syncDefault(row) {
    const select = row.querySelector("[data-attr-default]");
    const chosen = select.value;
    const values = options(row);
    const first = row.closest("[data-attr-editor]").dataset.firstText;
    select.replaceChildren(
      ...values.map((value) => new Option(value, value, false, value === chosen)),
      ...(values.length ? [] : [new Option(first, "")]),
    );
  }

  // Turn what is typed into chips; `all` also takes the text after the last separator.
  function commit(row, all) {
    const pending = row.querySelector("[data-attr-pending]");
    const parts = pending.value.split(SEPARATORS);
    const rest = all ? "" : parts.pop();
    const known = new Set(options(row));
    for (const part of parts.map((text) => text.trim())) {
      if (part && !known.has(part)) {
        makeChip(row, part);
        known.add(part);
      }
    }
    pending.value = rest;
    syncDefault(row);
  }

  function addRow(editor) {
    const rows = editor.querySelector("[data-attr-rows]");
    const numbers = [...rows.querySelectorAll("[data-attr-row] .attr-name")].map((input) =>
      Number(input.name.split("-")[1]),
    );
    const next = numbers.length ? Math.max(...numbers) + 1 : 0;
    const html = editor.querySelector("[data-attr-template]").innerHTML.replaceAll("__n__", next);
    rows.insertAdjacentHTML("beforeend", html);
    showButtons(editor);
    rows.lastElementChild.querySelector(".attr-name").focus();
  }

  function showButtons(editor) {
    for (const button of editor.querySelectorAll("[data-attr-add], [data-attr-remove]")) {
      button.hidden = false;
    }
  }

  document.addEventListener("keydown", (event) => {
    const pending = event.target.closest?.("[data-attr-pending]");
    if (!pending || event.key !== "Enter" || event.isComposing) return;
    event.preventDefault();
    commit(pending.closest("[data-attr-row]"), true);
  });
  document.addEventListener("input", (event) => {
    const pending = event.target.closest?.("[data-attr-pending]");
    if (pending && !event.isComposing && SEPARATORS.test(pending.value)) {
      commit(pending.closest("[data-attr-row]"), false);
    }
  });
  document.addEventListener("compositionend", (event) => {
    const pending = event.target.closest?.("[data-attr-pending]");
    if (pending && SEPARATORS.test(pending.value)) commit(pending.closest("[data-attr-row]"), false);
  });
  document.addEventListener("click", (event) => {
    const target = event.target;
    const editor = target.closest?.("[data-attr-editor]");
    if (!editor) return;
    if (target.closest("[data-attr-add]")) addRow(editor);
    const chip = target.closest("[data-attr-chip-remove]");
    if (chip) {
      const row = chip.closest("[data-attr-row]");
      chip.closest("[data-attr-chip]").remove();
      syncDefault(row);
      row.querySelector("[data-attr-pending]").focus();
    }
    const remove = target.closest("[data-attr-remove]");
    if (remove) remove.closest("[data-attr-row]").remove();
  });
  for (const editor of document.querySelectorAll("[data-attr-editor]")) showButtons(editor);
})();
