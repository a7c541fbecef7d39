% rebase('base.tpl', title='Welcome')
<section class="card narrow">
  <h1>Welcome</h1>
  <p class="lead">This appliance has no admin password yet. Choose one now: you will need it
  to open this page from any device on your network.</p>
  % if error:
  <p class="error" role="alert" id="setup-error">{{error}}</p>
  % end
  <form method="post" action="/setup" class="stack">
    <input type="hidden" name="csrf_token" value="{{csrf_token}}">
    <input type="text" name="username" value="admin" autocomplete="username" hidden>
    <label for="password">Admin password</label>
    <input id="password" name="password" type="password" autocomplete="new-password"
           minlength="{{min_length}}" required autofocus aria-describedby="password-hint">
    <p class="hint" id="password-hint">At least {{min_length}} characters. A few unrelated words are easy to remember and hard to guess.</p>
    <label for="confirm">Type it again</label>
    <input id="confirm" name="confirm" type="password" autocomplete="new-password"
           minlength="{{min_length}}" required>
    <button type="submit" class="primary">Set password and continue</button>
  </form>
</section>
