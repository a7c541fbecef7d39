% rebase('base.tpl', title='Delete ' + room.name)
<section class="card narrow">
  <h1>Delete “{{room.name}}”?</h1>
  <p>Callers will no longer be able to enter this room with PIN {{room.pin}}. A conference running in it now goes on until its callers hang up.</p>
  <form method="post" action="/rooms/{{room.id}}/delete" class="actions">
    <input type="hidden" name="csrf_token" value="{{csrf_token}}">
    <button type="submit" class="danger" id="confirm-delete">Delete the room</button>
    <a class="button" href="/rooms/{{room.id}}">Keep it</a>
  </form>
</section>
