<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
% if logged_in:
<meta name="csrf-token" content="{{csrf_token}}">
% end
<title>{{title}} · {{appliance_name}}</title>
<link rel="icon" href="/static/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/app.css">
% for style in get('styles', []):
<link rel="stylesheet" href="/static/{{style}}">
% end
% for script in scripts:
<script src="/static/{{script}}" defer></script>
% end
</head>
<body>
<header class="topbar">
  <a class="brand" href="/"><img src="/static/icon.svg" alt="" width="28" height="28"><span>{{appliance_name}}</span></a>
  % if logged_in:
  <nav class="nav" aria-label="Main">
    <a href="/"{{!' aria-current="page"' if page == 'status' else ''}}>Status</a>
    <a href="/live"{{!' aria-current="page"' if page == 'live' else ''}}>Live</a>
    <a href="/calls"{{!' aria-current="page"' if page == 'calls' else ''}}>Calls</a>
    <a href="/rooms"{{!' aria-current="page"' if page.startswith('room') else ''}}>Rooms</a>
    <a href="/rules"{{!' aria-current="page"' if page.startswith('rule') else ''}}>Rules</a>
    <a href="/recordings"{{!' aria-current="page"' if page == 'recordings' else ''}}>Recordings</a>
    <a href="/settings"{{!' aria-current="page"' if page == 'settings' else ''}}>Settings</a>
    % import bottle
    % if bottle.request.environ.get('appliance.simulator'):
    <a href="/simulator"{{!' aria-current="page"' if page == 'simulator' else ''}}>Simulator</a>
    % end
    <form method="post" action="/logout">
      <input type="hidden" name="csrf_token" value="{{csrf_token}}">
      <button type="submit" class="nav-button">Log out</button>
    </form>
  </nav>
  % end
</header>
<main class="content">
% for kind, text in flashes:
  <p class="flash flash-{{kind}}" role="status">{{text}}</p>
% end
{{!base}}
</main>
</body>
</html>
