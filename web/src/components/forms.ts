/** Small form pieces shared by the admin pages: a form with an error line, a typed delete confirmation. */
import { h, type Child } from '../dom';

/** A form that runs `submit(data)` and shows a failure's message next to its button. */
export function actionForm(label: string, fields: Child[], button: string, submit: (f: FormData) => Promise<void>, opts: { inline?: boolean } = {}): HTMLFormElement {
  const err = h('span', { class: 'error', role: 'alert' });
  const form = h(
    'form',
    { class: opts.inline === false ? 'card stack' : 'inline', 'aria-label': label },
    fields,
    h('button', { type: 'submit' }, button),
    err,
  ) as HTMLFormElement;
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    try {
      await submit(new FormData(form));
    } catch (e) {
      err.textContent = (e as Error).message;
    }
  });
  return form;
}

/**
 * A danger zone: the delete button is enabled only once the name of what goes has been typed,
 * the same confirmation the API asks for (`?confirm=NAME`).
 */
export function typedDelete(what: string, name: string, consequence: string, onDelete: (confirm: string) => Promise<void>): HTMLElement {
  const input = h('input', { name: 'confirm', autocomplete: 'off', 'aria-label': `Type ${name} to confirm` }) as HTMLInputElement;
  const button = h('button', { type: 'submit', class: 'danger', disabled: true }, `Delete ${what}`) as HTMLButtonElement;
  const err = h('span', { class: 'error', role: 'alert' });
  input.addEventListener('input', () => (button.disabled = input.value !== name));
  const form = h(
    'form',
    { class: 'card danger-zone', 'aria-label': `Delete ${what}` },
    h('h2', {}, `Delete this ${what}`),
    h('p', {}, consequence, ' This cannot be undone.'),
    h('label', {}, 'Type ', h('code', {}, name), ' to confirm ', input),
    h('p', {}, button, ' ', err),
  ) as HTMLFormElement;
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (input.value !== name) return;
    try {
      await onDelete(input.value);
    } catch (e) {
      err.textContent = (e as Error).message;
    }
  });
  return form;
}

export function table(label: string, columns: string[], rows: Child[][]): HTMLElement {
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { 'aria-label': label },
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c))))),
    ),
  );
}

export const roleSelect = (label: string, value = 'read'): HTMLSelectElement =>
  h('select', { name: 'role', 'aria-label': label }, ['read', 'write', 'admin', 'owner'].map((v) => h('option', { value: v, selected: v === value }, v))) as HTMLSelectElement;
