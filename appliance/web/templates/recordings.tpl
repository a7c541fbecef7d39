% rebase('base.tpl', title='Recordings')
<h1>Recordings</h1>
% if not available:
<p class="empty">Recordings are not available: the appliance has no storage.</p>
% elif not entries:
<p class="empty" id="no-recordings">No recordings yet. A room with recording on, or a call's <code>&lt;Record&gt;</code>, adds one here when it ends.</p>
% else:
<ul class="recordings" id="recordings">
% for entry in entries:
  <li class="card recording" data-sid="{{entry.sid}}">
    <div class="recording-head">
      <h2>{{owner_text(entry)}}</h2>
      <span class="recording-facts"><time datetime="{{entry.created}}">{{when_text(entry.created)}}</time> · <span class="duration">{{duration_text(entry.duration)}}</span> · <span class="size">{{size_text(entry.size)}}</span></span>
    </div>
    <audio controls preload="none" src="/recordings/{{entry.sid}}"></audio>
    <div class="actions">
      <a class="button" href="/recordings/{{entry.sid}}/download" download>Download</a>
      <form method="post" action="/recordings/{{entry.sid}}/delete" data-confirm="Delete this recording of {{owner_text(entry)}} ({{when_text(entry.created)}})? The file is removed for good.">
        <input type="hidden" name="csrf_token" value="{{csrf_token}}">
        <button type="submit" class="danger">Delete</button>
      </form>
    </div>
  </li>
% end
</ul>
% end
