"""Parent meetings (issue 21): a class teacher schedules one in the class's parents chat;
the bot invites, reminds, opens it and posts the minutes, on the broadcasts' clock."""
