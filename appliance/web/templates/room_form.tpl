% rebase('base.tpl', title=(room.name if room else 'New room'))
% def error(name):
%   if form.error(name):
<p class="error field-error" role="alert" id="error-{{name}}">{{form.error(name)}}</p>
%   end
% end
<div class="page-head">
  <h1>{{room.name if room else 'New room'}}</h1>
  <a href="/rooms">All rooms</a>
</div>
% if form.errors:
<p class="error" role="alert" id="form-errors">The room was not saved: correct the fields marked below.</p>
% end
<div class="room-layout">
<section class="card">
<form method="post" action="{{'/rooms/%d' % room.id if room else '/rooms'}}" enctype="multipart/form-data" class="stack room-form" id="room-form">
  <input type="hidden" name="csrf_token" value="{{csrf_token}}">

  <label for="name">Name</label>
  <input id="name" name="name" type="text" value="{{form.name}}" maxlength="64" required>
  % error('name')

  <label for="pin">PIN</label>
  <input id="pin" name="pin" type="text" inputmode="numeric" autocomplete="off" value="{{form.pin}}" pattern="[0-9]{4,10}" required>
  <span class="hint">4 to 10 digits; callers key it, then #.</span>
  % error('pin')

  <label for="moderator_pin">Moderator PIN (optional)</label>
  <input id="moderator_pin" name="moderator_pin" type="text" inputmode="numeric" autocomplete="off" value="{{form.moderator_pin}}" pattern="[0-9]{4,10}">
  <span class="hint">With a moderator PIN, callers hear the wait music until the moderator joins.</span>
  % error('moderator_pin')

  <label class="check"><input type="checkbox" name="end_on_moderator_exit" value="1" {{!'checked' if form.end_on_moderator_exit else ''}}> End the conference when the moderator leaves</label>
  % error('end_on_moderator_exit')

  <label class="check"><input type="checkbox" name="muted_on_entry" value="1" {{!'checked' if form.muted_on_entry else ''}}> Callers are muted when they enter</label>
  % error('muted_on_entry')

  <label for="beep">Beep</label>
  <select id="beep" name="beep">
  % for value, label in beeps:
    <option value="{{value}}" {{!'selected' if form.beep == value else ''}}>{{label}}</option>
  % end
  </select>
  % error('beep')

  <label for="wait_music">Wait music</label>
  <select id="wait_music" name="wait_music">
  % for value, label in music:
    <option value="{{value}}" {{!'selected' if form.wait_music == value else ''}}>{{label}}</option>
  % end
  </select>
  <label for="wait_file">Audio file to upload</label>
  <input id="wait_file" name="wait_file" type="file" accept=".wav,.mp3,.flac,.ogg,audio/*">
  <span class="hint">Choose “Upload a new file…” above. WAV, MP3, FLAC or Ogg, at most {{max_mb}} MB.</span>
  % error('wait_music')

  <label for="max_participants">Most people at once</label>
  <input id="max_participants" name="max_participants" type="number" min="2" max="250" value="{{form.max_participants}}" required>
  % error('max_participants')

  <label class="check"><input type="checkbox" name="record" value="1" {{!'checked' if form.record else ''}}> Record the conference</label>
  % error('record')

  <fieldset>
    <legend>Opening hours</legend>
    <p class="hint">Leave empty for always open. Outside these hours callers hear when the room opens.</p>
    % for index, row in enumerate(form.rows()):
    <div class="hours" id="hours{{index}}">
      <div class="days">
      % for day, label in enumerate(day_names):
        <label class="check"><input type="checkbox" name="hours{{index}}_days" value="{{day}}" {{!'checked' if day in row.days else ''}}> {{label}}</label>
      % end
      </div>
      <div class="times">
        <label>From <input type="time" name="hours{{index}}_start" value="{{row.start}}"></label>
        <label>To <input type="time" name="hours{{index}}_end" value="{{row.end}}"></label>
      </div>
      % error('hours%d' % index)
    </div>
    % end
    % error('opening_hours')
  </fieldset>

  <label for="allowed_callers">Allowed caller IDs</label>
  <textarea id="allowed_callers" name="allowed_callers" rows="3" placeholder="+15557654321">{{form.allowed_callers}}</textarea>
  <span class="hint">One number per line. Empty: anyone who knows the PIN.</span>
  % error('allowed_callers')

  <div class="actions">
    <button type="submit" class="primary" id="save-room">{{'Save' if room else 'Create room'}}</button>
    % if room:
    <a class="button" href="/rooms/{{room.id}}/delete">Delete…</a>
    % end
  </div>
</form>
</section>
% if twiml:
<section class="card" id="twiml">
  <h2>What callers run</h2>
  <p class="hint">The built-in entry serves this TwiML once a caller keys the PIN; the appliance's call rules may also use these addresses directly.</p>
  % for label, path, document in twiml:
  <h3>{{label}}: <code>{{path}}</code></h3>
  <pre class="twiml">{{document}}</pre>
  % end
</section>
% end
</div>
