% rebase('base.tpl', title=title)
<div class="page-head">
  <h1>{{name if not new else 'New rule file'}}</h1>
  <a href="/rules">All rule files</a>
</div>
% if message:
<p class="error" role="alert" id="rule-error">{{message}} The text below is as you left it.</p>
% end
% errors = [p for p in problems if not p.warning]
% warnings = [p for p in problems if p.warning]
% if problems and not message:
<p class="{{'error' if errors else 'hint'}}" id="rule-status">{{'The stored document has errors: calls hear an apology until it is fixed.' if errors else 'Saved. The parser warns about the lines below; calls still run (as on Twilio).'}}</p>
% end
% if users:
<p class="hint" id="rule-users">Runs the calls of line{{'s' if len(users) > 1 else ''}} {{', '.join(users)}}: a saved change applies to the next call.</p>
% end
% include('rule_problems.tpl', problems=problems, problems_id='problems')
<section class="card">
<form method="post" action="{{'/rules' if new else '/rules/' + name}}" class="stack room-form" id="rule-form">
  <input type="hidden" name="csrf_token" value="{{csrf_token}}">
  % if new:
  <label for="name">Name</label>
  <input id="name" name="name" type="text" value="{{name}}" maxlength="64" placeholder="welcome.xml" pattern="[A-Za-z0-9][A-Za-z0-9._ \-]*\.xml" required>
  <span class="hint">Ends in .xml; letters, digits, spaces, dots, - and _.</span>
  % end
  <label for="text">Document</label>
  <textarea id="text" name="text" rows="18" spellcheck="false" autocapitalize="off" class="code">{{text}}</textarea>
  <span class="hint">TwiML (&lt;Response&gt; with &lt;Say&gt;, &lt;Gather&gt;, &lt;Dial&gt;…) or Plivo XML (&lt;Speak&gt;, &lt;GetDigits&gt;, &lt;Conference&gt;…), at most {{max_kb}} KB. Relative URLs resolve beside this file, in the rules folder.</span>
  <div class="actions">
    <button type="submit" class="primary" id="save-rule">{{'Create' if new else 'Save'}}</button>
    <a class="button" href="/rules">Cancel</a>
  </div>
</form>
</section>
