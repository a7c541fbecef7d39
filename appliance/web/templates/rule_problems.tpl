% if problems:
<ol class="problems" id="{{problems_id}}">
% for problem in problems:
  <li class="problem problem-{{problem.kind}}" data-line="{{problem.line or ''}}">
    <span class="problem-where">{{'Line %d' % problem.line if problem.line else 'Document'}}</span>
    <span class="problem-kind">{{problem.kind}} {{problem.code}}</span>
    <span class="problem-message">{{problem.message}}</span>
  </li>
% end
</ol>
% end
