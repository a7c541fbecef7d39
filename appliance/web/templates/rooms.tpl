% rebase('base.tpl', title='Rooms')
<div class="page-head">
  <h1>Rooms</h1>
  <a class="button primary" href="/rooms/new" id="new-room">New room</a>
</div>
% if not rooms:
<p class="empty" id="no-rooms">No rooms yet. A room is a conference that callers enter with its PIN.</p>
% end
<ul class="rooms" id="rooms">
% for room in rooms:
  <li class="card room" data-room="{{room.id}}">
    <div class="room-head">
      <h2><a href="/rooms/{{room.id}}">{{room.name}}</a></h2>
      <a class="button" href="/rooms/{{room.id}}/delete">Delete</a>
    </div>
    <p class="hint">
      PIN {{room.pin}}{{' · moderator PIN set' if room.moderator_pin else ''}}
      · up to {{room.max_participants}} people
      · {{beeps.get(room.beep, room.beep)}}
      {{' · muted on entry' if room.muted_on_entry else ''}}
      {{' · recorded' if room.record else ''}}
      {{' · opening hours' if room.opening_hours else ''}}
      {{' · %d allowed caller(s)' % len(room.allowed_callers) if room.allowed_callers else ''}}
    </p>
  </li>
% end
</ul>
