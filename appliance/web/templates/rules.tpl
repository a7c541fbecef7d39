% rebase('base.tpl', title='Rule files')
<div class="page-head">
  <h1>Rule files</h1>
  <a class="button primary" href="/rules/new" id="new-rule">New rule file</a>
</div>
<p class="lead">TwiML or Plivo XML documents that tell the appliance what to do with a call. Each is checked by the same parser calls use before it is saved.</p>
% if error:
<p class="error" role="alert" id="rules-error">{{error}}</p>
% end

% if not names:
<p class="empty" id="no-rules">No rule files yet. Upload one, or start a new one.</p>
% else:
<ul class="rules" id="rules">
% for name in names:
  <li class="card rule" data-rule="{{name}}">
    <div class="room-head">
      <h2><a href="/rules/{{name}}">{{name}}</a></h2>
      <form method="post" action="/rules/{{name}}/delete" data-confirm="Delete the rule file {{name}}? It is removed for good.">
        <input type="hidden" name="csrf_token" value="{{csrf_token}}">
        <button type="submit" class="danger">Delete</button>
      </form>
    </div>
    <p class="hint">{{'Runs the calls of ' + ', '.join(users[name]) if users[name] else 'No line runs it.'}}</p>
  </li>
% end
</ul>
% end

<div class="rules-layout">
<section class="card" id="lines">
  <h2>Each line's call rules</h2>
  % if not rows:
  <p class="empty" id="no-lines">No lines are configured in config.toml.</p>
  % else:
  <form method="post" action="/rules/lines" class="stack room-form" id="lines-form">
    <input type="hidden" name="csrf_token" value="{{csrf_token}}">
    % for index, row in enumerate(rows):
    <fieldset class="line-choice" data-line="{{row.name}}">
      <legend>Line {{row.name}}</legend>
      <label for="choice_{{index}}">Calls run</label>
      <select id="choice_{{index}}" name="choice_{{index}}">
        <option value="{{CONFIG}}" {{!'selected' if row.choice == CONFIG else ''}}>From config.toml ({{row.config_url}})</option>
        <option value="{{ROOMS}}" {{!'selected' if row.choice == ROOMS else ''}}>The built-in rooms (PIN, then the room)</option>
        % for name in names:
        <option value="{{RULE_PREFIX + name}}" {{!'selected' if row.choice == RULE_PREFIX + name else ''}}>Rule file {{name}}</option>
        % end
        % if row.rule and row.rule not in names:
        <option value="{{row.choice}}" selected>Rule file {{row.rule}} (missing)</option>
        % end
        <option value="{{URL}}" {{!'selected' if row.choice == URL else ''}}>A URL (below)</option>
      </select>
      <label for="url_{{index}}">URL</label>
      <input id="url_{{index}}" name="url_{{index}}" type="url" value="{{row.url}}" placeholder="https://example.com/voice.xml" maxlength="2048">
      <span class="hint">Used when “A URL” is chosen: fetched with Twilio's voice parameters and signature.</span>
      % if row.name in line_errors:
      <p class="error field-error" role="alert" id="error-line-{{index}}">{{line_errors[row.name]}}</p>
      % end
    </fieldset>
    % end
    <div class="actions"><button type="submit" class="primary" id="save-lines">Save the lines' rules</button></div>
  </form>
  % end
</section>

<section class="card" id="upload">
  <h2>Upload a rule file</h2>
  <form method="post" action="/rules/upload" enctype="multipart/form-data" class="stack room-form" id="upload-form">
    <input type="hidden" name="csrf_token" value="{{csrf_token}}">
    <label for="rule_file">TwiML or Plivo XML file</label>
    <input id="rule_file" name="rule_file" type="file" accept=".xml,application/xml,text/xml" required>
    <span class="hint">A .xml file of at most {{max_kb}} KB; its name is kept (letters, digits, spaces, . - _).</span>
    % if upload_error:
    <p class="error field-error" role="alert" id="upload-error">{{upload_error}}</p>
    % end
    % include('rule_problems.tpl', problems=upload_problems, problems_id='upload-problems')
    <div class="actions"><button type="submit" id="upload-rule">Upload</button></div>
  </form>
</section>
</div>
