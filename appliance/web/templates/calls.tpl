% rebase('base.tpl', title='Call log')
<h1>Call log</h1>
<form method="get" action="/calls" class="card filters" id="filters">
  <div class="field"><label for="f-from">From</label><input id="f-from" name="from" type="date" value="{{found.values['from']}}"></div>
  <div class="field"><label for="f-to">To</label><input id="f-to" name="to" type="date" value="{{found.values['to']}}"></div>
  <div class="field"><label for="f-line">Line</label>
    <select id="f-line" name="line">
      <option value="">Any line</option>
      % for name in lines:
      <option value="{{name}}"{{!' selected' if name == found.values['line'] else ''}}>{{name}}</option>
      % end
    </select></div>
  <div class="field"><label for="f-caller">Caller</label><input id="f-caller" name="caller" type="text" inputmode="tel" placeholder="Any number" value="{{found.values['caller']}}"></div>
  <div class="field"><label for="f-status">Status</label>
    <select id="f-status" name="status">
      <option value="">Any status</option>
      % for value, label in statuses.items():
      <option value="{{value}}"{{!' selected' if value == found.values['status'] else ''}}>{{label}}</option>
      % end
    </select></div>
  <div class="filter-buttons">
    <button type="submit" class="primary">Show calls</button>
    % if found.active:
    <a class="button" href="/calls">Clear</a>
    % end
  </div>
</form>
% for message in found.errors:
<p class="error" role="alert">{{message}}</p>
% end
% if not available:
<p class="empty">The call log is not available: the appliance has no storage.</p>
% elif not records and not found.errors:
<p class="empty" id="no-calls">{{'No calls match these filters.' if found.active or not first_page else 'No calls yet. Each call the appliance answers or places is logged here.'}}</p>
% elif records:
<table class="calls" id="calls">
  <thead><tr><th scope="col">When</th><th scope="col">Line</th><th scope="col">From</th><th scope="col">To</th><th scope="col">Status</th><th scope="col">Length</th><th scope="col">Room</th></tr></thead>
  <tbody>
  % for call in records:
    <tr data-sid="{{call.sid}}" data-status="{{call.status}}">
      <td data-label="When"><time datetime="{{call.started}}">{{call_time(call.started)}}</time></td>
      <td data-label="Line">{{call.line}}</td>
      <td data-label="From" class="number">{{call.from_ or 'Unknown'}}</td>
      <td data-label="To" class="number to">{{call.to or '—'}}</td>
      <td data-label="Status"><div><span class="call-status" data-status="{{call.status}}">{{statuses.get(call.status, call.status)}}</span>
        % if call.reason and call.reason != call.status:
        <span class="hint reason">{{call.reason}}</span>
        % end
      </div></td>
      <td data-label="Length">{{call_duration(call)}}</td>
      <td data-label="Room">{{call.conference or '—'}}</td>
    </tr>
  % end
  </tbody>
</table>
% end
<nav class="pager" aria-label="Pages">
  % if not first_page:
  <a class="button" href="{{found.newest_link()}}">Newest calls</a>
  % end
  % if older:
  <a class="button" href="{{older}}" id="older">Older calls</a>
  % end
</nav>
