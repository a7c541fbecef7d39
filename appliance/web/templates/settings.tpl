% rebase('base.tpl', title='Settings')
<h1>Settings</h1>
<div class="settings">
<section class="card" id="name">
  <h2>Appliance name</h2>
  <p class="hint">Shown at the top of every page.</p>
  % if name_error:
  <p class="error" role="alert">{{name_error}}</p>
  % end
  <form method="post" action="/settings/name" class="stack">
    <input type="hidden" name="csrf_token" value="{{csrf_token}}">
    <label for="appliance-name">Name</label>
    <input id="appliance-name" name="name" type="text" value="{{name_value}}" maxlength="64" required>
    <button type="submit">Save name</button>
  </form>
</section>

<section class="card" id="password">
  <h2>Admin password</h2>
  % if password_error:
  <p class="error" role="alert" id="password-error">{{password_error}}</p>
  % end
  <form method="post" action="/settings/password" class="stack">
    <input type="hidden" name="csrf_token" value="{{csrf_token}}">
    <input type="text" name="username" value="admin" autocomplete="username" hidden>
    <label for="current">Current password</label>
    <input id="current" name="current" type="password" autocomplete="current-password" required>
    <label for="new-password">New password</label>
    <input id="new-password" name="password" type="password" autocomplete="new-password" required>
    <label for="confirm">New password again</label>
    <input id="confirm" name="confirm" type="password" autocomplete="new-password" required>
    <p class="hint">Changing it logs out every other browser.</p>
    <button type="submit">Change password</button>
  </form>
</section>

<section class="card" id="api">
  <h2>API credentials</h2>
  % if has_credentials:
  <p class="hint">For the Twilio-compatible REST API (HTTP Basic) and for checking the signatures of this appliance's webhooks.</p>
  % if api_error:
  <p class="error" role="alert">{{api_error}}</p>
  % end
  <dl class="details">
    <div><dt>Account SID</dt><dd><code id="account-sid">{{account_sid}}</code></dd></div>
    % if new_token:
    <div class="reveal"><dt>New auth token</dt>
      <dd><input id="new-token" class="token" type="text" value="{{new_token}}" readonly aria-describedby="token-hint">
      <span class="hint" id="token-hint">Copy it now; after you leave this page it shows only masked.</span></dd></div>
    % else:
    <div><dt>Auth token</dt><dd><code id="masked-token">{{masked_token}}</code></dd></div>
    % end
  </dl>
  <form method="post" action="/settings/api/rotate" class="stack" id="rotate-form">
    <input type="hidden" name="csrf_token" value="{{csrf_token}}">
    <button type="submit" class="danger">Make a new auth token</button>
  </form>
  % else:
  <p class="hint">{{api_error or 'This appliance has no API credentials.'}}</p>
  % end
</section>
</div>
