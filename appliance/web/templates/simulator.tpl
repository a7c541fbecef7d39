% rebase('base.tpl', title='Simulator')
<div class="page-head">
  <h1>Simulator</h1>
  <span class="hint" id="sim-poll" role="status" aria-live="polite"></span>
</div>
<p class="lead">These lines are simulated modems. Ring one as a caller, key the room's PIN and
  #, say a sentence, hang up: the appliance answers them like real calls. Watch them on
  <a href="/live">Live</a>.</p>
% if not lines:
<p class="empty" id="no-sim-lines">No simulated line has started yet. Reload in a moment.</p>
% end
<div class="lines sim-lines" id="sim-lines">
% for line in lines:
  <article class="card line sim-line" data-line="{{line['name']}}" data-state="{{line['state']}}">
    <div class="line-head">
      <h2>{{line['name']}}</h2>
      <span class="state" data-state="{{line['state']}}">{{line['label']}}</span>
    </div>
    <p class="hint">Number {{line['number'] or '—'}}<span class="sim-caller"{{!'' if line['caller_id'] else ' hidden'}}> · caller <span class="caller-id">{{line['caller_id']}}</span></span></p>
    <form method="post" action="/simulator/{{line['name']}}/ring" class="sim-form" data-when="{{' '.join(offered['ring'])}}"{{!'' if line['state'] in offered['ring'] else ' hidden'}}>
      <input type="hidden" name="csrf_token" value="{{csrf_token}}">
      <label for="caller-{{line['name']}}">Caller ID</label>
      <input id="caller-{{line['name']}}" name="caller_id" type="text" inputmode="tel" autocomplete="off" value="{{default_caller}}" pattern="\+?[0-9]{0,20}">
      <label for="name-{{line['name']}}">Caller name (optional)</label>
      <input id="name-{{line['name']}}" name="name" type="text" autocomplete="off" maxlength="40">
      <button type="submit" class="primary">Ring {{line['name']}}</button>
    </form>
    <form method="post" action="/simulator/{{line['name']}}/press" class="sim-form sim-inline" data-when="{{' '.join(offered['press'])}}"{{!'' if line['state'] in offered['press'] else ' hidden'}}>
      <input type="hidden" name="csrf_token" value="{{csrf_token}}">
      <label for="keys-{{line['name']}}">Keys</label>
      <div class="sim-row">
        <input id="keys-{{line['name']}}" name="keys" type="text" inputmode="tel" autocomplete="off" placeholder="1234#" pattern="[0-9*#A-Da-d]{1,32}" required>
        <button type="submit">Press</button>
      </div>
    </form>
    <form method="post" action="/simulator/{{line['name']}}/play" class="sim-form sim-inline" data-when="{{' '.join(offered['play'])}}"{{!'' if line['state'] in offered['play'] else ' hidden'}}>
      <input type="hidden" name="csrf_token" value="{{csrf_token}}">
      <label for="sample-{{line['name']}}">The caller says</label>
      <div class="sim-row">
        <select id="sample-{{line['name']}}" name="sample">
        % for key, text in samples.items():
          <option value="{{key}}">{{text}}</option>
        % end
        </select>
        <button type="submit">Say</button>
      </div>
    </form>
    <form method="post" action="/simulator/{{line['name']}}/hangup" class="sim-form" data-when="{{' '.join(offered['hangup'])}}"{{!'' if line['state'] in offered['hangup'] else ' hidden'}}>
      <input type="hidden" name="csrf_token" value="{{csrf_token}}">
      <button type="submit" class="danger">Hang up</button>
    </form>
  </article>
% end
</div>
<p class="hint">The same from a terminal:</p>
<ul class="hint sim-cli">
  <li><code>appliance sim ring gsm0 +15557654321</code></li>
  <li><code>appliance sim press gsm0 1234#</code></li>
  <li><code>appliance sim hangup gsm0</code></li>
</ul>
