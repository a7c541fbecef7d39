% rebase('base.tpl', title='Log in')
<section class="card narrow">
  <h1>Log in</h1>
  % if notice:
  <p class="flash flash-ok" role="status">{{notice}}</p>
  % end
  % if error:
  <p class="error" role="alert" id="login-error">{{error}}</p>
  % end
  <form method="post" action="/login" class="stack">
    <input type="hidden" name="csrf_token" value="{{csrf_token}}">
    <input type="hidden" name="next" value="{{next}}">
    <input type="text" name="username" value="admin" autocomplete="username" hidden>
    <label for="password">Admin password</label>
    <input id="password" name="password" type="password" autocomplete="current-password"
           required autofocus>
    <button type="submit" class="primary">Log in</button>
  </form>
</section>
